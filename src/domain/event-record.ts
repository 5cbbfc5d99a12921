// The normalised form of an audit event that the domain works with: plain
// values, defaults applied, times in microseconds. Conversions to and from
// the protobuf messages live here; hashing lives in hash-chain.ts.
import { create, type JsonObject } from "@bufbuild/protobuf";
import {
  ActorType,
  type Event,
  EventSchema,
  Outcome,
  Severity,
  type StoredEvent,
  StoredEventSchema,
} from "../../gen/auditlog/v1/event_pb.js";
import { type Micros, microsFromTimestamp, timestampFromMicros } from "./timestamp.ts";
import { uuidv7 } from "./uuidv7.ts";

export type ActorTypeName = "UNSPECIFIED" | "USER" | "SERVICE" | "SYSTEM";
export type OutcomeName = "SUCCESS" | "FAILURE" | "DENIED" | "UNKNOWN";
export type SeverityName = "INFO" | "WARNING" | "ERROR" | "CRITICAL";

export const SEVERITY_ORDER: readonly SeverityName[] = ["INFO", "WARNING", "ERROR", "CRITICAL"];

export type EventRecord = {
  id: string;
  occurredAt: Micros;
  action: string;
  actor: { id: string; type: ActorTypeName; name: string; ip: string; userAgent: string; sessionId: string };
  target: { type: string; id: string; name: string } | null;
  outcome: OutcomeName;
  severity: SeverityName;
  context: { requestId: string; traceId: string; source: string; location: string };
  changes: { before: JsonObject | null; after: JsonObject | null } | null;
  metadata: JsonObject | null;
  message: string;
};

export type StoredRecord = EventRecord & {
  tenantId: string;
  receivedAt: Micros;
  sequence: bigint;
  contentHash: string;
  hash: string;
  prevHash: string;
  /**
   * The random salt of the content hash (docs/HASH_CHAIN.md, "Salted content
   * hashes"); absent for events written before salts and for erased events,
   * whose erasure destroyed it.
   */
  salt?: string;
  /** Personal content removed by an erasure (docs/HASH_CHAIN.md, "Erased events"): verified against contentHash as stored. */
  erased?: boolean;
};

export function actorTypeName(v: ActorType): ActorTypeName {
  return (ActorType[v] ?? "UNSPECIFIED") as ActorTypeName;
}

export function outcomeName(v: Outcome): OutcomeName {
  return v === Outcome.UNSPECIFIED ? "UNKNOWN" : (Outcome[v] as OutcomeName);
}

export function severityName(v: Severity): SeverityName {
  return v === Severity.UNSPECIFIED ? "INFO" : (Severity[v] as SeverityName);
}

/** A validated Event as the record to store. Assigns a UUIDv7 when the producer sent no id. */
export function recordFromEvent(e: Event): EventRecord {
  if (!e.occurredAt || !e.actor) throw new Error("recordFromEvent needs a validated event");
  const changes =
    e.changes && (e.changes.before || e.changes.after) ? { before: e.changes.before ?? null, after: e.changes.after ?? null } : null;
  return {
    id: e.id || uuidv7(),
    occurredAt: microsFromTimestamp(e.occurredAt),
    action: e.action,
    actor: {
      id: e.actor.id,
      type: actorTypeName(e.actor.type),
      name: e.actor.name,
      ip: e.actor.ip,
      userAgent: e.actor.userAgent,
      sessionId: e.actor.sessionId,
    },
    target: e.target ? { type: e.target.type, id: e.target.id, name: e.target.name } : null,
    outcome: outcomeName(e.outcome),
    severity: severityName(e.severity),
    context: {
      requestId: e.context?.requestId ?? "",
      traceId: e.context?.traceId ?? "",
      source: e.context?.source ?? "",
      location: e.context?.location ?? "",
    },
    changes,
    metadata: e.metadata ?? null,
    message: e.message,
  };
}

export function eventFromRecord(r: EventRecord): Event {
  return create(EventSchema, {
    id: r.id,
    occurredAt: timestampFromMicros(r.occurredAt),
    action: r.action,
    actor: { ...r.actor, type: ActorType[r.actor.type] },
    target: r.target ?? undefined,
    outcome: Outcome[r.outcome],
    severity: Severity[r.severity],
    context: r.context,
    changes: r.changes ? { before: r.changes.before ?? undefined, after: r.changes.after ?? undefined } : undefined,
    metadata: r.metadata ?? undefined,
    message: r.message,
  });
}

export function storedEventFromRecord(r: StoredRecord): StoredEvent {
  return create(StoredEventSchema, {
    event: eventFromRecord(r),
    tenantId: r.tenantId,
    receivedAt: timestampFromMicros(r.receivedAt),
    sequence: r.sequence,
    hash: r.hash,
    prevHash: r.prevHash,
    ...(r.erased ? { contentHash: r.contentHash, erased: true } : {}),
    ...(r.salt ? { salt: r.salt } : {}),
  });
}
