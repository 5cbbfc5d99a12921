// Per-event validation: the protovalidate rules written in the contract, plus
// the limits protovalidate cannot express (encoded size, nesting of the open
// structures, finite numbers). Every violation names its field path within
// the event, in the contract's snake_case names.
import { toBinary, type JsonValue } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import type { Validator } from "@bufbuild/protovalidate";
import { type Event, EventSchema } from "../../gen/auditlog/v1/event_pb.js";

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

function walkStruct(value: JsonValue, path: string, depth: number, out: FieldViolation[]): void {
  if (out.length >= 10) return;
  if (typeof value === "string") {
    const reason = badTextReason(value);
    if (reason) out.push({ field: path, reason });
    return;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    out.push({ field: path, reason: "numbers must be finite" });
    return;
  }
  if (value === null || typeof value !== "object") return;
  if (depth > EVENT_LIMITS.maxDepth) {
    out.push({ field: path, reason: `nested deeper than ${EVENT_LIMITS.maxDepth} levels` });
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => walkStruct(v, `${path}[${i}]`, depth + 1, out));
    return;
  }
  const keys = Object.keys(value);
  if (keys.length > EVENT_LIMITS.maxKeysPerObject) {
    out.push({ field: path, reason: `more than ${EVENT_LIMITS.maxKeysPerObject} keys in one object` });
    return;
  }
  for (const k of keys) {
    if (k.length === 0 || k.length > EVENT_LIMITS.maxKeyLength) {
      out.push({ field: path, reason: `keys must be 1 to ${EVENT_LIMITS.maxKeyLength} characters` });
      return;
    }
    const keyReason = badTextReason(k);
    if (keyReason) {
      out.push({ field: path, reason: `key ${keyReason}` });
      return;
    }
    walkStruct(value[k] as JsonValue, `${path}.${k}`, depth + 1, out);
  }
}

export function validateEvent(validator: Validator, e: Event): FieldViolation[] {
  const size = toBinary(EventSchema, e).length;
  if (size > EVENT_LIMITS.maxEncodedBytes) {
    return [{ field: "", reason: `event is ${size} bytes encoded; the limit is ${EVENT_LIMITS.maxEncodedBytes}` }];
  }
  const result = validator.validate(EventSchema, e);
  const out: FieldViolation[] = [];
  if (result.kind === "invalid") {
    for (const v of result.violations) out.push({ field: pathToString(v.field), reason: v.message });
  } else if (result.kind === "error") {
    throw result.error;
  }
  const texts: [string, string | undefined][] = [
    ["id", e.id], ["action", e.action], ["message", e.message],
    ["actor.id", e.actor?.id], ["actor.name", e.actor?.name], ["actor.ip", e.actor?.ip],
    ["actor.user_agent", e.actor?.userAgent], ["actor.session_id", e.actor?.sessionId],
    ["target.type", e.target?.type], ["target.id", e.target?.id], ["target.name", e.target?.name],
    ["context.request_id", e.context?.requestId], ["context.trace_id", e.context?.traceId],
    ["context.source", e.context?.source], ["context.location", e.context?.location],
  ];
  for (const [field, text] of texts) {
    const reason = text ? badTextReason(text) : null;
    if (reason) out.push({ field, reason });
  }
  if (e.metadata) walkStruct(e.metadata, "metadata", 1, out);
  if (e.changes?.before) walkStruct(e.changes.before, "changes.before", 1, out);
  if (e.changes?.after) walkStruct(e.changes.after, "changes.after", 1, out);
  return out;
}
