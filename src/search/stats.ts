// The statistics model both backends answer with: the top fields, the
// histogram bound and how empty buckets are filled in, so that Elasticsearch
// and PostgreSQL give the same answer (test/integration/export-stats.test.ts).
import type { Micros } from "../domain/timestamp.ts";
import type { Stats, StatsInterval } from "./backend.ts";

/** The fields of Stats.top, in order. */
export const STATS_FIELDS = ["action", "actor.id", "target.type", "severity", "outcome"] as const;

/**
 * At most this many histogram buckets (first to last, empty ones included).
 * Below Elasticsearch's default search.max_buckets (65,536), which also
 * counts the terms buckets.
 */
export const MAX_HISTOGRAM_BUCKETS = 50_000;

export class TooManyBucketsError extends Error {
  readonly interval: StatsInterval;
  readonly buckets: number | null;

  constructor(interval: StatsInterval, buckets: number | null) {
    super(
      `the histogram would have ${buckets === null ? "too many" : `${buckets}`} ${interval} buckets (at most ${MAX_HISTOGRAM_BUCKETS}); ` +
        "use a longer interval or a shorter time range (occurred_after/occurred_before)",
    );
    this.interval = interval;
    this.buckets = buckets;
  }
}

const MINUTE_MS = 60_000;
const STEP_MS: Record<Exclude<StatsInterval, "month">, number> = {
  minute: MINUTE_MS,
  hour: 60 * MINUTE_MS,
  day: 24 * 60 * MINUTE_MS,
  week: 7 * 24 * 60 * MINUTE_MS,
};

/** The start of the bucket after the one starting at `ms` (a bucket start, UTC). */
export function nextBucketStart(ms: number, interval: StatsInterval): number {
  if (interval !== "month") return ms + STEP_MS[interval];
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** Buckets from the bucket starting at `firstMs` to the one starting at `lastMs`, both included. */
export function bucketCount(firstMs: number, lastMs: number, interval: StatsInterval): number {
  if (lastMs < firstMs) return 0;
  if (interval !== "month") return Math.floor((lastMs - firstMs) / STEP_MS[interval]) + 1;
  const a = new Date(firstMs);
  const b = new Date(lastMs);
  return (b.getUTCFullYear() - a.getUTCFullYear()) * 12 + (b.getUTCMonth() - a.getUTCMonth()) + 1;
}

/**
 * The histogram with the empty buckets between the first and the last
 * filled in. `sparse` holds bucket starts in ascending order.
 */
export function fillHistogram(sparse: { start: Micros; count: bigint }[], interval: StatsInterval): Stats["histogram"] {
  if (sparse.length === 0) return [];
  const firstMs = Number(sparse[0]!.start / 1000n);
  const lastMs = Number(sparse[sparse.length - 1]!.start / 1000n);
  const n = bucketCount(firstMs, lastMs, interval);
  if (n > MAX_HISTOGRAM_BUCKETS) throw new TooManyBucketsError(interval, n);
  const out: Stats["histogram"] = [];
  let i = 0;
  for (let ms = firstMs; ms <= lastMs; ms = nextBucketStart(ms, interval)) {
    const start = BigInt(ms) * 1000n;
    if (i < sparse.length && sparse[i]!.start === start) out.push(sparse[i++]!);
    else out.push({ start, count: 0n });
  }
  if (i !== sparse.length) throw new Error(`histogram bucket ${sparse[i]!.start} is not a ${interval} boundary`);
  return out;
}

export function emptyStats(): Stats {
  return { total: 0n, histogram: [], top: STATS_FIELDS.map((field) => ({ field, values: [] })) };
}
