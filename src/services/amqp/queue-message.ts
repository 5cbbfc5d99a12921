// What an AMQP message means for ingest: its Event (by content type), and
// the reason it is refused when it is not one. Kept apart from the
// consumer's connection handling so it can be tested without a broker.
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../../gen/auditlog/v1/event_pb.js";
import { EventWireSchema } from "../../../gen/auditlog/internal/v1/ingest_wire_pb.js";
import { eventFromWire, OpenContentDecodeError } from "../../domain/event-wire.ts";
import { strictTimestampViolation } from "../../domain/strict-json.ts";

const PROTOBUF = new Set(["application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf"]);
const JSON_TYPES = new Set(["application/json"]);

/** Why a message goes to the dead-letter queue: `x-auditlog-reason`, `x-auditlog-field`. */
export type Refusal = { reason: string; field: string };

export type Decoded = { event: Event } | { refusal: Refusal };

/** The Event in `body`, read as the content type says: protobuf (auditlog.v1.Event) or proto3 JSON. */
export function decodeEvent(contentType: string | undefined, body: Buffer): Decoded {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (PROTOBUF.has(type)) {
    try {
      // As the binary API requests are read (an event on its own: depth 1).
      return { event: eventFromWire(fromBinary(EventWireSchema, body), 1) };
    } catch (err) {
      const field = err instanceof OpenContentDecodeError ? err.field : "";
      return { refusal: { reason: `the body is not a protobuf auditlog.v1.Event: ${(err as Error).message}`, field } };
    }
  }
  if (JSON_TYPES.has(type)) {
    const text = body.toString("utf8");
    // The API's check: an impossible date is refused, not stored as another day.
    const bad = strictTimestampViolation(EventSchema, text);
    if (bad) return { refusal: bad };
    try {
      return { event: fromJsonString(EventSchema, text) };
    } catch (err) {
      return { refusal: { reason: `the body is not an auditlog.v1.Event in JSON: ${(err as Error).message}`, field: "" } };
    }
  }
  return {
    refusal: {
      reason: `content type ${JSON.stringify(contentType ?? "")} is not supported; use application/x-protobuf or application/json`,
      field: "content_type",
    },
  };
}

/** `queue=tenant` pairs (a queue bound to a tenant); a queue alone takes API keys from each message's headers. */
export type QueueBinding = { queue: string; tenantId: string | null };

export function parseQueueBindings(text: string): QueueBinding[] {
  const out: QueueBinding[] = [];
  for (const part of text.split(",")) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf("=");
    const queue = (eq < 0 ? p : p.slice(0, eq)).trim();
    const tenantId = eq < 0 ? null : p.slice(eq + 1).trim();
    if (!queue || tenantId === "") throw new Error(`"${p}": expected queue=tenant or queue`);
    out.push({ queue, tenantId });
  }
  return out;
}

/** The API key of a message: header `authorization` ("Bearer <key>") or `x-api-key`. */
export function authorizationOf(headers: Record<string, unknown> | undefined): string | null {
  const h = headers ?? {};
  const text = (v: unknown) => (typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : null);
  const auth = text(h.authorization ?? h.Authorization);
  if (auth) return auth;
  const key = text(h["x-api-key"]);
  return key ? `Bearer ${key}` : null;
}
