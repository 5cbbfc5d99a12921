// An event read with the wire type of the binary protocols
// (auditlog.internal.v1.EventWire: its open content left as bytes) as the
// auditlog.v1.Event that protobuf-es would have decoded from the same bytes.
import type { JsonObject } from "@bufbuild/protobuf";
import type { EventWire } from "../../gen/auditlog/internal/v1/ingest_wire_pb.js";
import type { Changes, Event } from "../../gen/auditlog/v1/event_pb.js";
import { structFromOccurrences } from "./struct-binary.ts";

/** Open content that is not a valid Struct encoding: the whole request is refused, as protobuf-es would refuse it. */
export class OpenContentDecodeError extends Error {
  /** The field in the event: metadata, changes.before or changes.after. */
  readonly field: string;
  constructor(field: string, cause: unknown) {
    super(`cannot decode ${field}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.field = field;
  }
}

function struct(occurrences: readonly Uint8Array[], depth: number, field: string): JsonObject | undefined {
  try {
    return structFromOccurrences(occurrences, depth);
  } catch (err) {
    throw new OpenContentDecodeError(field, err);
  }
}

/** Whether `e` was read with the wire type (binary requests) rather than the contract's (JSON). */
export function isEventWire(e: Event | EventWire): e is EventWire {
  return e.$typeName === "auditlog.internal.v1.EventWire";
}

/**
 * The Event of `w`. `depth` is the event's depth in its request as
 * protobuf-es counts it (an event in an AppendRequest: 2; an event on its
 * own: 1), for the recursion limit of the open content.
 */
export function eventFromWire(w: EventWire, depth: number): Event {
  // Field by field: object rest and spread took longer than the open content's decoding.
  const event = {
    $typeName: "auditlog.v1.Event",
    id: w.id,
    action: w.action,
    outcome: w.outcome,
    severity: w.severity,
    message: w.message,
  } as Event;
  // Message fields that were not sent stay absent, as in protobuf-es's Event.
  if (w.occurredAt !== undefined) event.occurredAt = w.occurredAt;
  if (w.actor !== undefined) event.actor = w.actor;
  if (w.target !== undefined) event.target = w.target;
  if (w.context !== undefined) event.context = w.context;
  const meta = struct(w.metadata, depth + 1, "metadata");
  if (meta) event.metadata = meta;
  if (w.changes !== undefined) {
    const c = { $typeName: "auditlog.v1.Changes" } as Changes;
    const b = struct(w.changes.before, depth + 2, "changes.before");
    if (b) c.before = b;
    const a = struct(w.changes.after, depth + 2, "changes.after");
    if (a) c.after = a;
    if (w.changes.$unknown) c.$unknown = w.changes.$unknown;
    event.changes = c;
  }
  if (w.$unknown) event.$unknown = w.$unknown;
  return event;
}
