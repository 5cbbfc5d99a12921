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

// The path is kept as a stack of segments and only joined when reporting:
// this walk runs over every key of every event on the write path.
type Segments = (string | number)[];

function pathText(root: string, segments: Segments): string {
  return segments.reduce<string>((p, s) => (typeof s === "number" ? `${p}[${s}]` : `${p}.${s}`), root);
}

function walkStruct(value: JsonValue, root: string, segments: Segments, out: FieldViolation[]): void {
  if (out.length >= 10) return;
  const report = (reason: string) => out.push({ field: pathText(root, segments), reason });
  if (typeof value === "string") {
    const reason = badTextReason(value);
    if (reason) report(reason);
    return;
  }
  if (typeof value === "number" && !Number.isFinite(value)) return void report("numbers must be finite");
  if (value === null || typeof value !== "object") return;
  if (segments.length + 1 > EVENT_LIMITS.maxDepth) return void report(`nested deeper than ${EVENT_LIMITS.maxDepth} levels`);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      segments.push(i);
      walkStruct(value[i]!, root, segments, out);
      segments.pop();
    }
    return;
  }
  const keys = Object.keys(value);
  if (keys.length > EVENT_LIMITS.maxKeysPerObject) return void report(`more than ${EVENT_LIMITS.maxKeysPerObject} keys in one object`);
  for (const k of keys) {
    if (k.length === 0 || k.length > EVENT_LIMITS.maxKeyLength) return void report(`keys must be 1 to ${EVENT_LIMITS.maxKeyLength} characters`);
    const keyReason = badTextReason(k);
    if (keyReason) return void report(`key ${keyReason}`);
    segments.push(k);
    walkStruct(value[k] as JsonValue, root, segments, out);
    segments.pop();
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
  if (e.metadata) walkStruct(e.metadata, "metadata", [], out);
  if (e.changes?.before) walkStruct(e.changes.before, "changes.before", [], out);
  if (e.changes?.after) walkStruct(e.changes.after, "changes.after", [], out);
  return out;
}
