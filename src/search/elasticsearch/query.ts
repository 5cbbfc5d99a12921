// EventQuery -> Elasticsearch query DSL, sort and search_after. Pure: no
// client, no I/O. The tenant term comes first in every query (routing by
// tenant narrows the shards; this filter is what isolates tenants). Every
// clause runs in filter context: results are ordered by time, never scored.
//
// Times: `occurred_at` is date_nanos. Sort values of date_nanos fields are
// epoch nanoseconds, above 2^53 and so not exact as JSON numbers; the sort
// asks for them formatted (RFC 3339 with the fraction), and search_after
// sends that text back, so positions round-trip exactly at microseconds.
import type { estypes } from "@elastic/elasticsearch";
import type { Condition, EventQuery, SortDirection } from "../../domain/event-query.ts";
import type { PagePosition } from "../../domain/page-token.ts";
import { formatMicros, type Micros, parseMicros } from "../../domain/timestamp.ts";

export type EsQuery = estypes.QueryDslQueryContainer;

/** The range date_nanos can hold: 1970-01-01 to 2262-04-11T23:47:16.854775807Z, in microseconds. */
export const DATE_NANOS_MIN_MICROS: Micros = 0n;
export const DATE_NANOS_MAX_MICROS: Micros = 9_223_372_036_854_775n;

/** Sort format of occurred_at: keeps all fraction digits (as text). */
export const OCCURRED_AT_SORT_FORMAT = "strict_date_optional_time_nanos";

export function esQuery(tenantId: string, q: EventQuery): EsQuery {
  const scope: EsQuery[] = [{ term: { tenant_id: tenantId } }];
  // A User's read: their own events only, next to the tenant and as binding (EventQuery.actorId).
  if (q.actorId !== undefined) scope.push({ term: { "actor.id": q.actorId } });
  return { bool: { filter: [...scope, ...q.conditions.map(conditionQuery)] } };
}

const MATCH_NONE: EsQuery = { match_none: {} };

export function conditionQuery(c: Condition): EsQuery {
  switch (c.kind) {
    case "terms":
      // ES field names are the TermField dotted names.
      return { terms: { [c.field]: c.values } };
    case "action": {
      const should: EsQuery[] = [
        ...(c.exact.length ? [{ terms: { action: c.exact } }] : []),
        ...c.prefixes.map((prefix) => ({ prefix: { action: { value: prefix } } })),
      ];
      return should.length ? { bool: { should, minimum_should_match: 1 } } : MATCH_NONE;
    }
    case "time":
      return timeQuery(c.from, c.to);
    case "metadata": {
      const field = `metadata.${c.path.join(".")}`;
      if (c.values.length === 0) return { exists: { field } };
      return c.values.length === 1 ? { term: { [field]: c.values[0]! } } : { terms: { [field]: c.values } };
    }
    case "text": {
      if (c.words.length === 0) return c.negate ? { match_all: {} } : MATCH_NONE;
      const phrase = c.words.join(" ");
      const q: EsQuery = {
        bool: {
          should: [{ match_phrase: { message: phrase } }, { match_phrase: { open_text: phrase } }],
          minimum_should_match: 1,
        },
      };
      return c.negate ? { bool: { must_not: [q] } } : q;
    }
    case "none":
      return MATCH_NONE;
  }
}

/**
 * occurred_at in [from, to). Bounds outside what date_nanos can hold would
 * make Elasticsearch fail the search; nothing indexed lies outside it, so
 * such a bound either drops out or empties the result.
 */
function timeQuery(from: Micros | null, to: Micros | null): EsQuery {
  const range: estypes.QueryDslDateRangeQuery = {};
  if (from !== null && from > DATE_NANOS_MIN_MICROS) {
    if (from > DATE_NANOS_MAX_MICROS) return MATCH_NONE;
    range.gte = formatMicros(from);
  }
  if (to !== null && to <= DATE_NANOS_MAX_MICROS) {
    if (to <= DATE_NANOS_MIN_MICROS) return MATCH_NONE;
    range.lt = formatMicros(to);
  }
  if (range.gte === undefined && range.lt === undefined) return { match_all: {} };
  return { range: { occurred_at: range } };
}

export function esSort(direction: SortDirection): estypes.SortCombinations[] {
  return [{ occurred_at: { order: direction, format: OCCURRED_AT_SORT_FORMAT } }, { sequence: { order: direction } }];
}

/**
 * search_after for a page position, matching esSort. A position outside the
 * date_nanos range (a token made by the PostgreSQL backend) cannot be sent:
 * then "start" (every indexed event comes after it) or "end" (none does).
 */
export function esSearchAfter(p: PagePosition, direction: SortDirection): estypes.SortResults | "start" | "end" {
  if (p.occurredAt < DATE_NANOS_MIN_MICROS) return direction === "asc" ? "start" : "end";
  if (p.occurredAt > DATE_NANOS_MAX_MICROS) return direction === "asc" ? "end" : "start";
  const seq = p.sequence <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(p.sequence) : p.sequence.toString();
  return [formatMicros(p.occurredAt), seq];
}

/** The page position of a hit's sort values (from a search sorted by esSort). */
export function positionFromSortValues(sort: estypes.SortResults | undefined): PagePosition {
  if (sort?.length !== 2) throw new Error(`unexpected sort values: ${JSON.stringify(sort)}`);
  const [time, seq] = sort;
  let occurredAt: Micros;
  if (typeof time === "string" && /^\d+$/.test(time)) {
    occurredAt = BigInt(time) / 1000n; // epoch nanoseconds as text: exact
  } else if (typeof time === "string") {
    occurredAt = parseMicros(time);
  } else {
    throw new Error(`occurred_at sort value ${String(time)} is not text: sort with format ${OCCURRED_AT_SORT_FORMAT}`);
  }
  if (!(typeof seq === "number" && Number.isSafeInteger(seq)) && !(typeof seq === "string" && /^\d+$/.test(seq))) {
    throw new Error(`unexpected sequence sort value: ${String(seq)}`);
  }
  return { occurredAt, sequence: BigInt(seq) };
}
