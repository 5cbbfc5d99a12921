// Erasure of a person's data (docs/HASH_CHAIN.md, "Erased events"): which
// events an erasure is about (its subject: a value in a named field, or in
// any field), what an erased event keeps, and how the subject is recorded
// without naming it.
//
// An erased event keeps what places it in the log and says what happened,
// but not to or by whom: id, sequence, times, action, outcome, severity,
// actor type, target type, request and trace ids, source, and its hashes.
// It loses the actor's id, name, IP, user agent and session, the target's id
// and name, the location, the message, metadata, changes and the salt of its
// content hash. A kept field that holds the erased value itself goes too.
// Its stored content_hash stands in for the content in the chain; without
// the salt it confirms no guess of that content.
import { createHash } from "node:crypto";
import type { JsonValue } from "@bufbuild/protobuf";
import type { StoredRecord } from "./event-record.ts";
import { matchesCondition } from "./match-query.ts";

/** The envelope string fields an erasure can name, and their events column. */
export const ERASABLE_FIELDS = {
  "actor.id": "actor_id",
  "actor.name": "actor_name",
  "actor.ip": "actor_ip",
  "actor.user_agent": "actor_user_agent",
  "actor.session_id": "actor_session_id",
  "target.type": "target_type",
  "target.id": "target_id",
  "target.name": "target_name",
  "context.request_id": "request_id",
  "context.trace_id": "trace_id",
  "context.source": "source",
  "context.location": "location",
} as const;

export type ErasableField = keyof typeof ERASABLE_FIELDS;

/** The erasable fields an erased event keeps, unless they hold the erased value. */
export const KEPT_FIELDS: readonly ErasableField[] = ["target.type", "context.request_id", "context.trace_id", "context.source"];

/** The field name of an erasure of a value wherever it appears. */
export const ANY_FIELD = "*";

const METADATA_PREFIX = "metadata.";

/**
 * Whose data an erasure removes: the events where `value` is
 * - `field`: the value of that envelope field;
 * - `metadata`: a value at that metadata path (as the search's metadata
 *   filter reads it: scalars by their text, arrays by their elements, a key
 *   may hold dots);
 * - `any`: the value of any erasable envelope field, or any scalar anywhere
 *   in metadata, changes.before or changes.after (by its text).
 */
export type ErasureSubject =
  | { kind: "field"; field: ErasableField; value: string }
  | { kind: "metadata"; path: string[]; value: string }
  | { kind: "any"; value: string };

/** A field name EraseSubject cannot erase by. */
export class ErasureFieldError extends Error {
  constructor(field: string) {
    super(
      `not an erasable field: "${field}" (an envelope string field such as actor.id or context.location, metadata.<path>, or ${ANY_FIELD})`,
    );
    this.name = "ErasureFieldError";
  }
}

/** The subject of a request's `field` ("" means actor.id) and `value`. */
export function erasureSubject(field: string, value: string): ErasureSubject {
  const f = field === "" ? "actor.id" : field;
  if (f === ANY_FIELD) return { kind: "any", value };
  if (f.startsWith(METADATA_PREFIX)) {
    const path = f.slice(METADATA_PREFIX.length).split(".");
    if (path.some((segment) => segment === "")) throw new ErasureFieldError(field);
    return { kind: "metadata", path, value };
  }
  if (!(f in ERASABLE_FIELDS)) throw new ErasureFieldError(field);
  return { kind: "field", field: f as ErasableField, value };
}

/** The subject's field as a request names it: `actor.id`, `metadata.<path>` or `*`. */
export function subjectField(s: ErasureSubject): string {
  switch (s.kind) {
    case "field":
      return s.field;
    case "metadata":
      return METADATA_PREFIX + s.path.join(".");
    case "any":
      return ANY_FIELD;
  }
}

/** Every scalar (string, number, boolean) inside `v`, through objects and arrays, as text. */
function scalarTexts(v: JsonValue | null | undefined, out: string[] = []): string[] {
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") out.push(String(v));
  else if (Array.isArray(v)) for (const x of v) scalarTexts(x, out);
  else if (v !== null && v !== undefined) for (const x of Object.values(v)) scalarTexts(x, out);
  return out;
}

const FIELD_NAMES = Object.keys(ERASABLE_FIELDS) as ErasableField[];

/** The value of an erasable field; null for target fields of an event without target. */
export function fieldValue(r: StoredRecord, f: ErasableField): string | null {
  switch (f) {
    case "actor.id":
      return r.actor.id;
    case "actor.name":
      return r.actor.name;
    case "actor.ip":
      return r.actor.ip;
    case "actor.user_agent":
      return r.actor.userAgent;
    case "actor.session_id":
      return r.actor.sessionId;
    case "target.type":
      return r.target?.type ?? null;
    case "target.id":
      return r.target?.id ?? null;
    case "target.name":
      return r.target?.name ?? null;
    case "context.request_id":
      return r.context.requestId;
    case "context.trace_id":
      return r.context.traceId;
    case "context.source":
      return r.context.source;
    case "context.location":
      return r.context.location;
  }
}

/**
 * Whether the record is one the subject is about. The definition every store
 * is erased by: PostgreSQL rows (after a broader SQL filter), archive lines,
 * the search index (the same fields, as term queries).
 */
export function matchesSubject(r: StoredRecord, s: ErasureSubject): boolean {
  switch (s.kind) {
    case "field":
      return fieldValue(r, s.field) === s.value;
    case "metadata":
      return matchesCondition(r, { kind: "metadata", path: s.path, values: [s.value] });
    case "any":
      return (
        FIELD_NAMES.some((f) => fieldValue(r, f) === s.value) ||
        scalarTexts(r.metadata).includes(s.value) ||
        scalarTexts(r.changes?.before).includes(s.value) ||
        scalarTexts(r.changes?.after).includes(s.value)
      );
  }
}

/** The kept fields (KEPT_FIELDS) that the erasure of `s` blanks in `r`: those holding the erased value. */
export function blankedKeptFields(r: StoredRecord, s: ErasureSubject | null): ErasableField[] {
  if (s === null || s.kind === "metadata") return [];
  const named = s.kind === "field" ? KEPT_FIELDS.filter((f) => f === s.field) : KEPT_FIELDS;
  return named.filter((f) => fieldValue(r, f) === s.value);
}

/**
 * The record as an erasure of `subject` leaves it (null: only what every
 * erasure removes); `contentHash` must be the hash of the intact content.
 */
export function erasedRecord(r: StoredRecord, subject: ErasureSubject | null = null): StoredRecord {
  const blank = new Set(blankedKeptFields(r, subject));
  const kept = (f: ErasableField, v: string) => (blank.has(f) ? "" : v);
  const { salt: _destroyed, ...rest } = r;
  return {
    ...rest,
    actor: { id: "", type: r.actor.type, name: "", ip: "", userAgent: "", sessionId: "" },
    target: r.target === null ? null : { type: kept("target.type", r.target.type), id: "", name: "" },
    context: {
      requestId: kept("context.request_id", r.context.requestId),
      traceId: kept("context.trace_id", r.context.traceId),
      source: kept("context.source", r.context.source),
      location: "",
    },
    changes: null,
    metadata: null,
    message: "",
    erased: true,
  };
}

/**
 * The subject as the erasure record names it: SHA-256 over the erasure id,
 * the field and the value. The random erasure id salts it, so equal subjects
 * of two erasures do not give equal hashes; whoever knows the subject can
 * recompute it and see that this erasure was theirs.
 */
export function subjectHash(erasureId: string, field: string, value: string): string {
  return createHash("sha256").update(`${erasureId}\n${field}\n${value}`, "utf8").digest("hex");
}
