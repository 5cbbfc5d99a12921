// Which of the attacker's calls the quiet tenant's slowest calls ran beside
// (bench/noisy-neighbour.ts --timeline). For each victim operation, its
// slowest 1 % of calls under attack against all of them: how often each kind
// of attacker call (kind and answer, "shards:OK") was in flight during the
// victim's call. A kind in flight during the slow calls much more often than
// during calls in general is what the slow calls wait for; one that is in
// flight as often either way is not. And how long the victim's calls took
// with each kind in flight against without it: what a kind costs the
// victim's call that runs beside it.

/** One call: what it was, and when it started and ended (ms, one clock for both processes). */
export type TimedCall = { kind: string; start: number; end: number };

export type OverlapRow = {
  /** Attacker call kind and answer. */
  kind: string;
  /** Share of all the victim's calls of this operation with one of these in flight. */
  all: number;
  /** The same share among its slowest 1 %. */
  slow: number;
  /** Median and 90th percentile duration (ms) of the victim's calls with one of these in flight, and without; null for no calls. */
  beside: Durations | null;
  apart: Durations | null;
};

export type Durations = { p50: number; p90: number };

/** Nearest-rank percentiles of `ms`, sorted in any order. */
function durations(ms: number[]): Durations | null {
  if (ms.length === 0) return null;
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p90: at(0.9) };
}

export type OverlapReport = { op: string; calls: number; slowCalls: number; thresholdMs: number; rows: OverlapRow[] };

/** Attacker calls sorted by start, with the longest duration, for a search by time. */
function byStart(calls: readonly TimedCall[]): { sorted: TimedCall[]; longest: number } {
  const sorted = [...calls].sort((a, b) => a.start - b.start);
  let longest = 0;
  for (const c of sorted) longest = Math.max(longest, c.end - c.start);
  return { sorted, longest };
}

/** The kinds in flight at some point of [start, end]. */
function kindsDuring(index: { sorted: TimedCall[]; longest: number }, start: number, end: number): Set<string> {
  const { sorted, longest } = index;
  // The first call that could still be running at `start`.
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]!.start < start - longest) lo = mid + 1;
    else hi = mid;
  }
  const kinds = new Set<string>();
  for (let i = lo; i < sorted.length && sorted[i]!.start <= end; i++) if (sorted[i]!.end >= start) kinds.add(sorted[i]!.kind);
  return kinds;
}

/** Per victim operation, the share of its calls and of its slowest 1 % that ran beside each attacker kind. */
export function callOverlap(victim: readonly TimedCall[], attacker: readonly TimedCall[], slowShare = 0.01): OverlapReport[] {
  const index = byStart(attacker);
  const kinds = [...new Set(attacker.map((c) => c.kind))].sort();
  const ops = [...new Set(victim.map((c) => c.kind))].sort();
  return ops.map((op) => {
    const calls = victim.filter((c) => c.kind === op).sort((a, b) => b.end - b.start - (a.end - a.start));
    const slowCalls = Math.min(calls.length, Math.max(1, Math.ceil(calls.length * slowShare)));
    const fastestSlow = calls[slowCalls - 1];
    const during = calls.map((c) => kindsDuring(index, c.start, c.end));
    /** The share of the first `n` calls (the slowest first) with `kind` in flight. */
    const share = (n: number, kind: string) => (n > 0 ? during.slice(0, n).filter((k) => k.has(kind)).length / n : 0);
    return {
      op,
      calls: calls.length,
      slowCalls,
      thresholdMs: fastestSlow ? fastestSlow.end - fastestSlow.start : 0,
      rows: kinds.map((kind) => ({
        kind,
        all: share(calls.length, kind),
        slow: share(slowCalls, kind),
        beside: durations(calls.filter((_, i) => during[i]!.has(kind)).map((c) => c.end - c.start)),
        apart: durations(calls.filter((_, i) => !during[i]!.has(kind)).map((c) => c.end - c.start)),
      })),
    };
  });
}
