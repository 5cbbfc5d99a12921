// The reference evaluator of the query model: decides for one record whether
// it matches, in plain code. It is the specification the backends are tested
// against (test/integration/search-equivalence.test.ts compares PostgreSQL
// and Elasticsearch with it), so it favours being obviously right over speed.
//
//   terms     the field equals one of the values (target.* of an event
//             without target: never)
//   action    equals one of `exact` or starts with one of `prefixes`
//   time      from <= occurred_at < to (a null bound is open)
//   metadata  a value at the path (walking objects only) is a string,
//             number or boolean whose text (String(v)) is one of the values,
//             or an array with such an element; with no values: a non-null
//             scalar or an array with a non-null scalar element. "At the
//             path" means under keys that, joined with dots, spell the path
//             joined with dots: a.b.c is {"a":{"b":{"c":…}}}, {"a.b.c":…},
//             {"a.b":{"c":…}} and {"a":{"b.c":…}}, all of them (what an
//             Elasticsearch flattened field indexes)
//   text      the words appear consecutively in words(message), or within
//             words(s) of one string value s of metadata / changes.before /
//             changes.after (never across two values)
//   none      never
import type { JsonValue } from "@bufbuild/protobuf";
import type { StoredRecord } from "./event-record.ts";
import { type Condition, type EventQuery, type SortDirection, type TermField, words } from "./event-query.ts";

export function matchesQuery(r: StoredRecord, q: EventQuery): boolean {
  return q.conditions.every((c) => matchesCondition(r, c));
}

export function matchesCondition(r: StoredRecord, c: Condition): boolean {
  switch (c.kind) {
    case "terms": {
      const v = termValue(r, c.field);
      return v !== null && c.values.includes(v);
    }
    case "action":
      return c.exact.includes(r.action) || c.prefixes.some((p) => r.action.startsWith(p));
    case "time":
      return (c.from === null || r.occurredAt >= c.from) && (c.to === null || r.occurredAt < c.to);
    case "metadata": {
      const texts = valuesAt(r.metadata, c.path).flatMap(scalarTexts);
      return c.values.length === 0 ? texts.length > 0 : texts.some((t) => c.values.includes(t));
    }
    case "text":
      return matchesText(r, c.words) !== c.negate;
    case "none":
      return false;
  }
}

/** The value of a term field; null when the event has no such value (no target). */
export function termValue(r: StoredRecord, field: TermField): string | null {
  switch (field) {
    case "id":
      return r.id;
    case "action":
      return r.action;
    case "actor.id":
      return r.actor.id;
    case "actor.type":
      return r.actor.type;
    case "actor.name":
      return r.actor.name;
    case "actor.ip":
      return r.actor.ip;
    case "actor.session_id":
      return r.actor.sessionId;
    case "target.type":
      return r.target?.type ?? null;
    case "target.id":
      return r.target?.id ?? null;
    case "target.name":
      return r.target?.name ?? null;
    case "outcome":
      return r.outcome;
    case "severity":
      return r.severity;
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

function isObject(v: JsonValue | undefined): v is { [k: string]: JsonValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The values at `path`, descending through objects only (never into arrays),
 * where a key may stand for several segments: every value whose keys, joined
 * with dots, are the path joined with dots.
 */
function valuesAt(root: JsonValue | null, path: readonly string[]): JsonValue[] {
  const found: JsonValue[] = [];
  const walk = (v: JsonValue, rest: string) => {
    if (!isObject(v)) return;
    for (const [key, child] of Object.entries(v)) {
      if (key === rest) found.push(child);
      else if (rest.startsWith(key + ".")) walk(child, rest.slice(key.length + 1));
    }
  };
  if (root !== null) walk(root, path.join("."));
  return found;
}

function scalarText(v: JsonValue | undefined): string | null {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? String(v) : null;
}

/** The texts a metadata value compares by: a scalar's, or those of an array's scalar elements. */
function scalarTexts(v: JsonValue | undefined): string[] {
  if (Array.isArray(v)) return v.map(scalarText).filter((t): t is string => t !== null);
  const t = scalarText(v);
  return t === null ? [] : [t];
}

type TextWords = { message: string[]; values: string[][] };

// words() of a record's texts, computed once per record object: the oracle
// runs every query over every record.
const wordCache = new WeakMap<StoredRecord, TextWords>();

function textWords(r: StoredRecord): TextWords {
  let w = wordCache.get(r);
  if (!w) {
    const values: string[][] = [];
    const walk = (v: JsonValue | null | undefined) => {
      if (typeof v === "string") values.push(words(v));
      else if (Array.isArray(v)) v.forEach(walk);
      else if (isObject(v)) Object.values(v).forEach(walk);
    };
    walk(r.metadata);
    walk(r.changes?.before);
    walk(r.changes?.after);
    w = { message: words(r.message), values };
    wordCache.set(r, w);
  }
  return w;
}

/** Whether `needle` occurs as consecutive elements of `hay`. An empty phrase matches nothing. */
export function containsPhrase(hay: readonly string[], needle: readonly string[]): boolean {
  if (needle.length === 0) return false;
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function matchesText(r: StoredRecord, phrase: readonly string[]): boolean {
  const w = textWords(r);
  return containsPhrase(w.message, phrase) || w.values.some((v) => containsPhrase(v, phrase));
}

/** Result order: occurred_at, then sequence, both ascending or both descending. */
export function compareForSort(a: StoredRecord, b: StoredRecord, direction: SortDirection): number {
  const c =
    a.occurredAt !== b.occurredAt
      ? a.occurredAt < b.occurredAt
        ? -1
        : 1
      : a.sequence !== b.sequence
        ? a.sequence < b.sequence
          ? -1
          : 1
        : 0;
  return direction === "asc" ? c : -c;
}
