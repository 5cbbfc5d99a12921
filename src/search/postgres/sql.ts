// EventQuery -> SQL over `events`. Every value is a bind parameter; the
// tenant condition is always first, and row-level security enforces it again.
import type { Condition, EventQuery, SortDirection, TermField } from "../../domain/event-query.ts";
import type { PagePosition } from "../../domain/page-token.ts";
import { formatMicros } from "../../domain/timestamp.ts";

export type Sql = { text: string; values: unknown[] };

export const TERM_COLUMNS: Record<TermField, string> = {
  id: "id",
  action: "action",
  "actor.id": "actor_id",
  "actor.type": "actor_type",
  "actor.name": "actor_name",
  "actor.ip": "actor_ip",
  "actor.session_id": "actor_session_id",
  "target.type": "target_type",
  "target.id": "target_id",
  "target.name": "target_name",
  outcome: "outcome",
  severity: "severity",
  "context.request_id": "request_id",
  "context.trace_id": "trace_id",
  "context.source": "source",
  "context.location": "location",
};

/** Lowercased message plus every string value of metadata and changes, as one searchable text. */
const OPEN_TEXT_SQL = `lower(message || ' ' || coalesce(
  (SELECT string_agg(x #>> '{}', ' ')
     FROM jsonb_path_query(jsonb_build_array(coalesce(metadata, '{}'), coalesce(changes, '{}')), 'strict $.**') AS j(x)
    WHERE jsonb_typeof(x) = 'string'), ''))`;

/**
 * The rows to search: `events`, and with free-text conditions the open text
 * of each row built once, as column `open_text`, for all of its terms. The
 * OFFSET 0 keeps PostgreSQL from inlining it back into every condition.
 */
export function fromClause(q: EventQuery): string {
  if (!q.conditions.some((c) => c.kind === "text")) return "events";
  return `events CROSS JOIN LATERAL (SELECT ${OPEN_TEXT_SQL} AS open_text OFFSET 0) ot`;
}

/** A jsonpath that walks objects only (strict: no implicit array unwrapping, no indexes). */
export function metadataJsonPath(path: readonly string[]): string {
  return `strict $${path.map((k) => `.${JSON.stringify(k)}`).join("")}`;
}

/**
 * The values at a metadata path of several segments, where a key may contain
 * dots and so stand for several of them (`a.b.c` is {"a":{"b":{"c"}}},
 * {"a.b.c"}, {"a.b":{"c"}} and {"a":{"b.c"}}, as in an Elasticsearch
 * `flattened` field and the reference evaluator): walks down only the keys
 * that are a whole-segment prefix of what is left of the dotted path, so the
 * cost follows the data, never the number of ways to split the path.
 */
function metadataDottedValuesSql(dottedParam: string): string {
  return `WITH RECURSIVE walk(o, rest) AS (
         SELECT metadata, ${dottedParam}::text
         UNION ALL
         SELECT e.value, substr(w.rest, length(e.key) + 2)
           FROM walk w, jsonb_each(w.o) e
          WHERE jsonb_typeof(e.value) = 'object' AND starts_with(w.rest, e.key || '.'))
       SELECT e.value AS m FROM walk w, jsonb_each(w.o) e WHERE e.key = w.rest`;
}

/**
 * The scalars at a metadata path: the values themselves, or the elements of
 * arrays there (what a `flattened` field indexes), as text. One segment
 * cannot be split, so it is looked up directly.
 */
function metadataScalarsSql(path: readonly string[], p: (v: unknown) => string): string {
  const values =
    path.length === 1
      ? `SELECT jsonb_path_query_first(metadata, ${p(metadataJsonPath(path))}::jsonpath, '{}', true) AS m`
      : metadataDottedValuesSql(p(path.join(".")));
  return `SELECT x #>> '{}' AS v
     FROM (${values}) s,
          jsonb_array_elements(CASE WHEN jsonb_typeof(m) = 'array' THEN m ELSE jsonb_build_array(m) END) e(x)
    WHERE jsonb_typeof(x) IN ('string', 'number', 'boolean')`;
}

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
}

/**
 * `column` equals one of `values`. One value is written as `=`: on
 * PostgreSQL 15 an index scan with `= ANY(...)` on a column after the first
 * (the tenant) does not return rows in index order, so a page would need a
 * sort of every match instead of stopping after one page.
 */
function anyOf(column: string, values: readonly string[], p: (v: unknown) => string): string {
  return values.length === 1 ? `${column} = ${p(values[0])}::text` : `${column} = ANY(${p(values)}::text[])`;
}

function conditionSql(c: Condition, p: (v: unknown) => string): string {
  switch (c.kind) {
    case "terms":
      return anyOf(TERM_COLUMNS[c.field], c.values, p);
    case "action": {
      const parts = [
        ...(c.exact.length ? [anyOf("action", c.exact, p)] : []),
        // starts_with avoids LIKE's wildcard escaping.
        ...c.prefixes.map((prefix) => `starts_with(action, ${p(prefix)})`),
      ];
      return `(${parts.join(" OR ")})`;
    }
    case "time": {
      const parts = [];
      if (c.from !== null) parts.push(`occurred_at >= ${p(formatMicros(c.from))}::timestamptz`);
      if (c.to !== null) parts.push(`occurred_at < ${p(formatMicros(c.to))}::timestamptz`);
      return parts.length ? `(${parts.join(" AND ")})` : "true";
    }
    case "metadata": {
      const scalars = metadataScalarsSql(c.path, p);
      return c.values.length ? `EXISTS (SELECT 1 FROM (${scalars}) t WHERE v = ANY(${p(c.values)}::text[]))` : `EXISTS (${scalars})`;
    }
    case "text": {
      // Words are runs of letters and digits; match the phrase at word boundaries.
      const pattern = `(^|[^[:alnum:]])${c.words.map(escapeRegex).join("[^[:alnum:]]+")}($|[^[:alnum:]])`;
      return `${c.negate ? "NOT " : ""}(ot.open_text ~ ${p(pattern)})`;
    }
    case "none":
      return "false";
  }
}

export function whereClause(tenantId: string, q: EventQuery): Sql {
  const values: unknown[] = [];
  const p = (v: unknown) => {
    values.push(v);
    return `$${values.length}`;
  };
  const conds = [`tenant_id = ${p(tenantId)}`, ...q.conditions.map((c) => conditionSql(c, p))];
  return { text: conds.join(" AND "), values };
}

export function searchSql(
  tenantId: string,
  q: EventQuery,
  direction: SortDirection,
  after: PagePosition | null,
  limit: number,
  columns: string,
  /** The last position the page may hold (inclusive): a range of the order instead of a count (copy-export.ts). */
  until: PagePosition | null = null,
): Sql {
  const where = whereClause(tenantId, q);
  const values = [...where.values];
  let text = where.text;
  const bound = (p: PagePosition, op: string) => {
    values.push(formatMicros(p.occurredAt), p.sequence.toString());
    text += ` AND (occurred_at, sequence) ${op} ($${values.length - 1}::timestamptz, $${values.length}::bigint)`;
  };
  if (after) bound(after, direction === "asc" ? ">" : "<");
  if (until) bound(until, direction === "asc" ? "<=" : ">=");
  values.push(limit);
  const dir = direction === "asc" ? "ASC" : "DESC";
  return {
    // Qualified: an output column of the same name (the formatted time) would otherwise be sorted, bypassing the index.
    text: `SELECT ${columns} FROM ${fromClause(q)} WHERE ${text} ORDER BY events.occurred_at ${dir}, events.sequence ${dir} LIMIT $${values.length}`,
    values,
  };
}

export function countSql(tenantId: string, q: EventQuery): Sql {
  const where = whereClause(tenantId, q);
  return { text: `SELECT count(*)::bigint AS n FROM ${fromClause(q)} WHERE ${where.text}`, values: where.values };
}
