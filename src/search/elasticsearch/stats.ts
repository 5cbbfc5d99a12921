// Statistics from Elasticsearch in one search with size 0, routed to the
// tenant's shards and filtered by esQuery (which always holds the tenant
// condition): the exact total, a date_histogram on occurred_at (UTC calendar
// buckets, weeks starting on Monday, empty buckets between the first and the
// last included) and terms aggregations for the five top fields, most
// frequent first and ties by value. PostgreSQL gives the same answer
// (src/search/postgres/stats.ts); the model both share is src/search/stats.ts.
//
// Top values are the stored values: enum fields by their short stored name
// ("WARNING", "DENIED"); the RPC layer adds the proto prefix.
//
// Terms counts over several monthly indices are exact as long as a field has
// at most `shard_size` distinct values per index (max(1000, 20 x top));
// beyond that Elasticsearch's counts for the tail may be approximate.
import type { Client, estypes } from "@elastic/elasticsearch";
import type { EventQuery } from "../../domain/event-query.ts";
import type { Stats, StatsInterval } from "../backend.ts";
import { emptyStats, MAX_HISTOGRAM_BUCKETS, STATS_FIELDS, TooManyBucketsError } from "../stats.ts";
import { esQuery } from "./query.ts";
import { READ_ALIAS } from "./index-template.ts";

/** Elasticsearch's error type (or a nested cause's), if `err` is an Elasticsearch error response. */
export function esErrorTypes(err: unknown): string[] {
  const body = (err as { meta?: { body?: unknown } } | null)?.meta?.body;
  const out: string[] = [];
  const walk = (e: unknown) => {
    if (!e || typeof e !== "object") return;
    const o = e as Record<string, unknown>;
    if (typeof o["type"] === "string") out.push(o["type"]);
    walk(o["caused_by"]);
    if (Array.isArray(o["root_cause"])) for (const c of o["root_cause"]) walk(c);
    if (Array.isArray(o["failed_shards"])) for (const f of o["failed_shards"]) walk((f as { reason?: unknown }).reason);
  };
  walk((body as { error?: unknown } | undefined)?.error);
  return out;
}

type TermsAgg = estypes.AggregationsStringTermsAggregate;
type HistogramAgg = estypes.AggregationsDateHistogramAggregate;

export async function esStats(
  client: Client,
  tenantId: string,
  q: EventQuery,
  interval: StatsInterval,
  top: number,
  opts: { alias?: string; signal?: AbortSignal } = {},
): Promise<Stats> {
  const shardSize = Math.max(1000, top * 20);
  const aggs: Record<string, estypes.AggregationsAggregationContainer> = {
    histogram: {
      date_histogram: { field: "occurred_at", calendar_interval: interval, time_zone: "UTC", min_doc_count: 0 },
    },
  };
  STATS_FIELDS.forEach((field, i) => {
    aggs[`top${i}`] = {
      terms: { field, size: top, shard_size: shardSize, order: [{ _count: "desc" }, { _key: "asc" }] },
    };
  });
  let r: estypes.SearchResponse<unknown, Record<string, estypes.AggregationsAggregate>>;
  try {
    r = await client.search<unknown, Record<string, estypes.AggregationsAggregate>>(
      {
        index: opts.alias ?? READ_ALIAS,
        routing: tenantId,
        size: 0,
        track_total_hits: true,
        query: esQuery(tenantId, q),
        aggs,
      },
      { signal: opts.signal },
    );
  } catch (err) {
    const types = esErrorTypes(err);
    if (types.includes("too_many_buckets_exception")) throw new TooManyBucketsError(interval, null);
    // No monthly index yet: nothing has been indexed, so nothing matches.
    if (types.includes("index_not_found_exception")) return emptyStats();
    throw err;
  }
  if (r._shards.failed > 0 || r.timed_out) {
    throw new Error(`statistics incomplete: ${r._shards.failed} of ${r._shards.total} shards failed${r.timed_out ? ", timed out" : ""}`);
  }
  const total = r.hits.total;
  const results = r.aggregations;
  if (!results) throw new Error("statistics came back without their aggregations");
  const histogram = ((results["histogram"] as HistogramAgg).buckets as estypes.AggregationsDateHistogramBucket[]).map((b) => ({
    start: BigInt(b.key) * 1000n,
    count: BigInt(b.doc_count),
  }));
  if (histogram.length > MAX_HISTOGRAM_BUCKETS) throw new TooManyBucketsError(interval, histogram.length);
  return {
    total: BigInt(typeof total === "number" ? total : (total?.value ?? 0)),
    histogram,
    top: STATS_FIELDS.map((field, i) => ({
      field,
      values: ((results[`top${i}`] as TermsAgg).buckets as estypes.AggregationsStringTermsBucket[]).map((b) => ({
        value: String(b.key),
        count: BigInt(b.doc_count),
      })),
    })),
  };
}
