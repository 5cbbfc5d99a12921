// Statistics from the system of record, with the same answer as
// Elasticsearch's (src/search/elasticsearch/stats.ts): the matching events are read once
// (one statement, one snapshot, tenant-scoped under row-level security) and
// counted in total, per UTC time bucket (date_trunc; weeks start on Monday as
// in ISO 8601 and in Elasticsearch's calendar_interval) and per value of the
// five top fields, most frequent first and ties by value in byte order
// (COLLATE "C", which is how Elasticsearch orders keyword terms).
import type { Pool } from "pg";
import type { EventQuery } from "../../domain/event-query.ts";
import { parseMicros } from "../../domain/timestamp.ts";
import type { Stats, StatsInterval } from "../backend.ts";
import { fillHistogram, MAX_HISTOGRAM_BUCKETS, STATS_FIELDS, TooManyBucketsError } from "../stats.ts";
import { fromClause, whereClause } from "./sql.ts";
import { withTenantRead } from "../../store/tenant-scope.ts";

const COLUMN: Record<(typeof STATS_FIELDS)[number], string> = {
  action: "action",
  "actor.id": "actor_id",
  "target.type": "target_type",
  severity: "severity",
  outcome: "outcome",
};

const UNIT: Record<StatsInterval, string> = { minute: "minute", hour: "hour", day: "day", week: "week", month: "month" };

type StatsRow = {
  total: string;
  buckets: number;
  histogram: [string, string][] | null;
} & Record<string, [string, string][] | null>;

export async function pgStats(
  pool: Pool,
  tenantId: string,
  q: EventQuery,
  interval: StatsInterval,
  top: number,
  opts: { signal?: AbortSignal; statementTimeoutMs?: number } = {},
): Promise<Stats> {
  const where = whereClause(tenantId, q);
  const values: unknown[] = [...where.values];
  const p = (v: unknown) => {
    values.push(v);
    return `$${values.length}`;
  };
  const unit = p(UNIT[interval]);
  const max = p(MAX_HISTOGRAM_BUCKETS);
  const limit = p(top);
  const topSql = STATS_FIELDS.map((field, i) => {
    const col = COLUMN[field];
    return `(SELECT json_agg(json_build_array(v, n::text) ORDER BY n DESC, v COLLATE "C")
        FROM (SELECT ${col} AS v, count(*) AS n FROM f WHERE ${col} IS NOT NULL
              GROUP BY 1 ORDER BY count(*) DESC, ${col} COLLATE "C" LIMIT ${limit}) t) AS top${i}`;
  });
  const text = `WITH f AS MATERIALIZED (
      SELECT occurred_at, ${Object.values(COLUMN).join(", ")} FROM ${fromClause(q)} WHERE ${where.text}),
    h AS (SELECT date_trunc(${unit}, occurred_at AT TIME ZONE 'UTC') AS b, count(*) AS n FROM f GROUP BY 1)
    SELECT (SELECT count(*) FROM f)::text AS total,
      (SELECT count(*) FROM h)::int AS buckets,
      (SELECT json_agg(json_build_array(to_char(b, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), n::text) ORDER BY b)
         FROM h WHERE (SELECT count(*) FROM h) <= ${max}) AS histogram,
      ${topSql.join(",\n      ")}`;
  const row = await withTenantRead(pool, tenantId, async (db) => (await db.query<StatsRow>(text, values)).rows[0]!, {
    ...opts,
    actorId: q.actorId,
  });
  if (row.buckets > MAX_HISTOGRAM_BUCKETS) throw new TooManyBucketsError(interval, row.buckets);
  const sparse = (row.histogram ?? []).map(([start, n]) => ({ start: parseMicros(start), count: BigInt(n) }));
  return {
    total: BigInt(row.total),
    histogram: fillHistogram(sparse, interval),
    top: STATS_FIELDS.map((field, i) => ({
      field,
      values: (row[`top${i}`] ?? []).map(([value, n]) => ({ value, count: BigInt(n) })),
    })),
  };
}
