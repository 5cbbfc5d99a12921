// The query model shared by every search backend: a conjunction of plain
// conditions. The EventFilter message and the human query string both turn
// into conditions; PostgreSQL, Elasticsearch and the reference evaluator
// (matchesQuery) each translate them, never the protobuf message, so all
// answer the same question.
import type { EventFilter } from "../../gen/auditlog/v1/query_pb.js";
import { Severity } from "../../gen/auditlog/v1/event_pb.js";
import { actorTypeName, outcomeName, SEVERITY_ORDER, severityName, type SeverityName } from "./event-record.ts";
import { MAX_MICROS, MIN_MICROS, type Micros, microsFromTimestamp, timestampProblem } from "./timestamp.ts";

/** A filter field the query cannot be built from; `field` is its path within the EventFilter. */
export class FilterFieldError extends Error {
  readonly field: string;
  constructor(field: string, reason: string) {
    super(reason);
    this.field = field;
  }
}

/** A filter's time bound, truncated to microseconds like the times of events. */
function boundMicros(field: string, ts: { seconds: bigint; nanos: number }): Micros {
  const reason = timestampProblem(ts);
  if (reason) throw new FilterFieldError(field, reason);
  return microsFromTimestamp(ts);
}

/**
 * occurred_at in [from, to) with both bounds within the years 1 to 9999
 * (what PostgreSQL and the index are asked about), or "none" when nothing
 * can match: a bound beyond every storable time is dropped, since the answer
 * is the same without it.
 */
export function timeCondition(from: Micros | null, to: Micros | null): Condition {
  const f = from !== null && from > MIN_MICROS ? from : null;
  const t = to !== null && to <= MAX_MICROS ? to : null;
  if ((f !== null && f > MAX_MICROS) || (t !== null && t <= MIN_MICROS) || (f !== null && t !== null && f >= t)) return { kind: "none" };
  return { kind: "time", from: f, to: t };
}

/** The query with its time conditions in range (see timeCondition); what the backends are given. */
export function boundedQuery(q: EventQuery): EventQuery {
  return { ...q, conditions: q.conditions.map((c) => (c.kind === "time" ? timeCondition(c.from, c.to) : c)) };
}

/** Envelope fields that can be matched exactly, by their dotted names. */
export const TERM_FIELDS = [
  "id",
  "action",
  "actor.id",
  "actor.type",
  "actor.name",
  "actor.ip",
  "actor.session_id",
  "target.type",
  "target.id",
  "target.name",
  "outcome",
  "severity",
  "context.request_id",
  "context.trace_id",
  "context.source",
  "context.location",
] as const;
export type TermField = (typeof TERM_FIELDS)[number];

export type Condition =
  /** The field equals one of the values (enum fields by stored name, e.g. "WARNING"). */
  | { kind: "terms"; field: TermField; values: string[] }
  /** The action equals one of `exact` or starts with one of `prefixes` (which end in "."). */
  | { kind: "action"; exact: string[]; prefixes: string[] }
  /** occurred_at in [from, to). */
  | { kind: "time"; from: Micros | null; to: Micros | null }
  /** The scalar at a metadata path has one of the values as text; empty values: the path exists. */
  | { kind: "metadata"; path: string[]; values: string[] }
  /** The words, in this order, appear in message or in the string values of metadata/changes. */
  | { kind: "text"; words: string[]; negate: boolean }
  /** Matches nothing (contradictory conditions). */
  | { kind: "none" };

export type EventQuery = {
  conditions: Condition[];
  /**
   * Only events of this actor may be seen (a User's own activity). Handlers
   * also add the matching `actor.id` condition; the backends enforce this
   * field on their own besides (PostgreSQL row-level security, a mandatory
   * Elasticsearch filter), so a query that lost its condition still cannot
   * reach other actors' events.
   */
  actorId?: string;
};

/** `q` restricted to `actorId`'s events (see EventQuery.actorId); unchanged for null. */
export function restrictToActor(q: EventQuery, actorId: string | null): EventQuery {
  if (actorId === null) return q;
  // The database policy reads an empty actor as "no restriction".
  if (actorId === "") throw new Error("restrictToActor: empty actor id");
  return { conditions: [...q.conditions, { kind: "terms", field: "actor.id", values: [actorId] }], actorId };
}

export type SortDirection = "asc" | "desc";

/**
 * Free text is matched by words as Unicode defines them (UAX #29 word
 * boundaries, lowercased): what Elasticsearch's standard analyzer indexes for
 * `message` and `open_text`, so the reference evaluator and the index agree.
 */
const wordSegmenter = new Intl.Segmenter("und", { granularity: "word" });

export function words(text: string): string[] {
  const out: string[] = [];
  for (const s of wordSegmenter.segment(text.toLowerCase())) if (s.isWordLike) out.push(s.segment);
  return out;
}

/** Parses the `text` field: words, "quoted phrases", -excluded words or -"phrases". */
export function textConditions(text: string): Condition[] {
  const out: Condition[] = [];
  const re = /(-?)(?:"([^"]*)"|(\S+))/g;
  for (const m of text.matchAll(re)) {
    const w = words(m[2] ?? m[3] ?? "");
    if (w.length) out.push({ kind: "text", words: w, negate: m[1] === "-" });
  }
  return out;
}

export function severitiesAtLeast(s: SeverityName): SeverityName[] {
  return SEVERITY_ORDER.slice(SEVERITY_ORDER.indexOf(s));
}

export function queryFromFilter(f: EventFilter | undefined): EventQuery {
  const conditions: Condition[] = [];
  if (!f) return { conditions };
  const terms = (field: TermField, values: readonly string[]) => {
    if (values.length) conditions.push({ kind: "terms", field, values: [...new Set(values)] });
  };
  terms("id", f.ids);
  if (f.actions.length) {
    conditions.push({
      kind: "action",
      exact: f.actions.filter((a) => !a.endsWith(".*")),
      prefixes: f.actions.filter((a) => a.endsWith(".*")).map((a) => a.slice(0, -1)),
    });
  }
  terms("actor.id", f.actorIds);
  terms("actor.type", f.actorTypes.map(actorTypeName));
  terms("actor.ip", f.actorIps);
  terms("actor.session_id", f.sessionIds);
  terms("target.type", f.targetTypes);
  terms("target.id", f.targetIds);
  terms("outcome", f.outcomes.map(outcomeName));
  terms("severity", f.severities.map(severityName));
  if (f.minSeverity !== Severity.UNSPECIFIED) terms("severity", severitiesAtLeast(severityName(f.minSeverity)));
  terms("context.request_id", f.requestIds);
  terms("context.trace_id", f.traceIds);
  terms("context.source", f.sources);
  terms("context.location", f.locations);
  if (f.occurredAfter || f.occurredBefore) {
    conditions.push(
      timeCondition(
        f.occurredAfter ? boundMicros("occurred_after", f.occurredAfter) : null,
        f.occurredBefore ? boundMicros("occurred_before", f.occurredBefore) : null,
      ),
    );
  }
  for (const m of f.metadata) conditions.push({ kind: "metadata", path: m.key.split("."), values: m.values });
  conditions.push(...textConditions(f.text));
  return { conditions };
}
