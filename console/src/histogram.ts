// The histogram's points over the whole searched range: the service returns
// buckets from the first to the last event only, and a chart of one or two
// bars, stretched over the width, says little. Empty buckets become zeros.
const MAX_POINTS = 2000;

/** xs in seconds (bucket starts, ascending), step in seconds. */
export function fillBuckets(xs: number[], ys: number[], step: number, from?: number, to?: number): [number[], number[]] {
  if (step <= 0 || xs.length === 0) return [xs, ys];
  const first = xs[0]!;
  // Bucket starts aligned with the service's buckets.
  const start = from === undefined ? first : first - Math.floor((first - from) / step) * step;
  const end = Math.max(to ?? xs[xs.length - 1]!, xs[xs.length - 1]!);
  if ((end - start) / step > MAX_POINTS) return [xs, ys];
  const counts = new Map(xs.map((x, i) => [x, ys[i]!]));
  const outX: number[] = [];
  const outY: number[] = [];
  for (let x = start; x <= end; x += step) {
    outX.push(x);
    outY.push(counts.get(x) ?? 0);
  }
  // Buckets off the grid (calendar months, daylight saving) are kept as they are.
  for (const x of xs) if (!outX.includes(x)) return [xs, ys];
  return [outX, outY];
}
