// Per-event validation: the protovalidate rules written in the contract, plus
// the limits protovalidate cannot express (encoded size, nesting of the open
// structures, finite numbers). Every violation names its field path within
// the event, in the contract's snake_case names.
import { toBinary, type JsonValue } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import type { Validator } from "@bufbuild/protovalidate";
import { type Event, EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { compilePrecheck } from "./rule-precheck.ts";
import { timestampProblem } from "./timestamp.ts";

export type FieldViolation = { field: string; reason: string };

export const EVENT_LIMITS = {
  maxEncodedBytes: 64 * 1024,
  maxDepth: 8,
  maxKeysPerObject: 256,
  maxKeyLength: 256,
};

// PostgreSQL cannot store NUL in text or jsonb, and a lone surrogate would be
// replaced on the way in, so the stored content would no longer match its hash.
function badTextReason(s: string): string | null {
  if (s.includes("\u0000")) return "must not contain NUL characters";
  if (!s.isWellFormed()) return "must be well-formed Unicode";
  return null;
}

// The path is kept as a stack of segments and only joined when reporting:
// this walk runs over every key of every event on the write path.
type Segments = (string | number)[];

function pathText(root: string, segments: Segments): string {
  return segments.reduce<string>((p, s) => (typeof s === "number" ? `${p}[${s}]` : `${p}.${s}`), root);
}

// An upper bound of a string's encoded size with its field's tag and length:
// UTF-8 takes at most 3 bytes per UTF-16 unit, tag and length at most 6.
const stringBound = (s: string) => 3 * s.length + 8;
// The envelope's fixed-size parts: timestamp, enums, the framing of the nested messages.
const ENVELOPE_BOUND = 128;

/**
 * Checks an open JSON value and returns an upper bound of its encoded size as
 * a google.protobuf.Value (framing included). The bound is meaningless once a
 * violation was reported.
 */
function walkStruct(value: JsonValue, root: string, segments: Segments, out: FieldViolation[]): number {
  if (out.length >= 10) return 0;
  const report = (reason: string) => void out.push({ field: pathText(root, segments), reason });
  if (typeof value === "string") {
    const reason = badTextReason(value);
    if (reason) report(reason);
    return stringBound(value) + 6;
  }
  if (typeof value === "number" && !Number.isFinite(value)) return (report("numbers must be finite"), 0);
  if (value === null || typeof value !== "object") return 16;
  if (segments.length + 1 > EVENT_LIMITS.maxDepth) return (report(`nested deeper than ${EVENT_LIMITS.maxDepth} levels`), 0);
  let bound = 12;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      segments.push(i);
      bound += walkStruct(value[i]!, root, segments, out) + 6;
      segments.pop();
    }
    return bound;
  }
  const keys = Object.keys(value);
  if (keys.length > EVENT_LIMITS.maxKeysPerObject) return (report(`more than ${EVENT_LIMITS.maxKeysPerObject} keys in one object`), 0);
  for (const k of keys) {
    if (k.length === 0 || k.length > EVENT_LIMITS.maxKeyLength)
      return (report(`keys must be 1 to ${EVENT_LIMITS.maxKeyLength} characters`), 0);
    const keyReason = badTextReason(k);
    if (keyReason) return (report(`key ${keyReason}`), 0);
    segments.push(k);
    bound += stringBound(k) + walkStruct(value[k] as JsonValue, root, segments, out) + 12;
    segments.pop();
  }
  return bound;
}

/**
 * The service writes its access audit (src/services/access-audit.ts) into
 * each tenant's log under this action prefix; producers may not, so that
 * nobody can forge or drown an access record. Checked before the rule
 * pre-check, so no shortcut lets such an event through.
 */
export const RESERVED_ACTION_PREFIX = "auditlog.";

export function isReservedAction(action: string): boolean {
  return action === "auditlog" || action.startsWith(RESERVED_ACTION_PREFIX);
}

// Compiled once from the contract; null would mean "always ask protovalidate".
const precheck = compilePrecheck(EventSchema);

/** The event's text fields, by the names violations carry (one table, not an array of them per event). */
const TEXT_FIELDS: readonly (readonly [string, (e: Event) => string | undefined])[] = [
  ["id", (e) => e.id],
  ["action", (e) => e.action],
  ["message", (e) => e.message],
  ["actor.id", (e) => e.actor?.id],
  ["actor.name", (e) => e.actor?.name],
  ["actor.ip", (e) => e.actor?.ip],
  ["actor.user_agent", (e) => e.actor?.userAgent],
  ["actor.session_id", (e) => e.actor?.sessionId],
  ["target.type", (e) => e.target?.type],
  ["target.id", (e) => e.target?.id],
  ["target.name", (e) => e.target?.name],
  ["context.request_id", (e) => e.context?.requestId],
  ["context.trace_id", (e) => e.context?.traceId],
  ["context.source", (e) => e.context?.source],
  ["context.location", (e) => e.context?.location],
];

/**
 * Checks the event's text and open structures (NUL, well-formed Unicode,
 * finite numbers, nesting) into `out`, and returns an upper bound of its
 * encoded size (meaningless once a violation was reported).
 */
function checkContent(e: Event, out: FieldViolation[]): number {
  let bound = ENVELOPE_BOUND;
  // protovalidate compares occurred_at with the contract's window after
  // normalising it, so {seconds: 9223372035, nanos: 1999999999} would pass
  // and be stored as a later instant, outside the window.
  const timeReason = e.occurredAt ? timestampProblem(e.occurredAt) : null;
  if (timeReason) out.push({ field: "occurred_at", reason: timeReason });
  if (isReservedAction(e.action)) {
    out.push({ field: "action", reason: `actions starting with "${RESERVED_ACTION_PREFIX}" are reserved for the service's access audit` });
  }
  for (const [field, textOf] of TEXT_FIELDS) {
    const text = textOf(e);
    if (!text) continue;
    bound += stringBound(text);
    const reason = badTextReason(text);
    if (reason) out.push({ field, reason });
  }
  if (e.metadata) bound += walkStruct(e.metadata, "metadata", [], out);
  if (e.changes?.before) bound += walkStruct(e.changes.before, "changes.before", [], out);
  if (e.changes?.after) bound += walkStruct(e.changes.after, "changes.after", [], out);
  return bound;
}

/** An upper bound of the event's protobuf encoding in bytes (for an event without violations). */
export function encodedSizeBound(e: Event): number {
  return checkContent(e, []);
}

export function validateEvent(validator: Validator, e: Event): FieldViolation[] {
  const own: FieldViolation[] = [];
  const bound = checkContent(e, own);
  // Encoding the event again costs as much as checking it: only when the
  // bound does not already prove it small enough.
  if (own.length > 0 || bound > EVENT_LIMITS.maxEncodedBytes) {
    const size = toBinary(EventSchema, e).length;
    if (size > EVENT_LIMITS.maxEncodedBytes) {
      return [{ field: "", reason: `event is ${size} bytes encoded; the limit is ${EVENT_LIMITS.maxEncodedBytes}` }];
    }
  }
  if (own.length === 0 && precheck !== null && precheck(e)) return own;
  const result = validator.validate(EventSchema, e);
  if (result.kind === "error") throw result.error;
  if (result.kind === "valid") return own;
  return [...result.violations.map((v) => ({ field: pathToString(v.field), reason: v.message })), ...own];
}
