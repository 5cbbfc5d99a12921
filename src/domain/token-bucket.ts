// Token buckets by key (tenant today; API key or read cost later): each key
// may spend `ratePerSecond` tokens a second on average and up to `burst` at
// once. Pure: the clock is injected, nothing waits here.
//
// Memory stays bounded by the keys active recently: a bucket that has
// refilled to `burst` is indistinguishable from one never seen, so it is
// dropped, and a sweep at most every `burst / rate` seconds finds them.
//
// A bucket also remembers how many tokens the last refused take asked for,
// until a take succeeds: a caller that must decide before it knows a call's
// size (the transport refusing an Append before decoding its body) assumes
// the call asks as much again (`nextShortfallMs`).

export type TakeResult =
  | { ok: true }
  /** `retryAfterMs`: when `n` tokens will be there, if nobody else spends them; Infinity when `n` exceeds the burst (it never fits). */
  | { ok: false; retryAfterMs: number };

export type KeyedTokenBucketsOptions = {
  ratePerSecond: number;
  burst: number;
  /** Milliseconds, monotonic; performance.now by default. */
  now?: () => number;
};

/** `asked`: tokens the last refused take wanted (0: none since the last successful take). */
type Bucket = { tokens: number; at: number; asked: number };

export class KeyedTokenBuckets {
  readonly ratePerSecond: number;
  readonly burst: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();
  /** How long an untouched bucket takes to refill completely. */
  private readonly fullAfterMs: number;
  private lastSweep: number;

  constructor(opts: KeyedTokenBucketsOptions) {
    if (!(opts.ratePerSecond > 0) || !Number.isFinite(opts.ratePerSecond)) throw new RangeError("ratePerSecond must be a positive number");
    if (!(opts.burst >= 1) || !Number.isFinite(opts.burst)) throw new RangeError("burst must be at least 1");
    this.ratePerSecond = opts.ratePerSecond;
    this.burst = opts.burst;
    this.now = opts.now ?? (() => performance.now());
    this.fullAfterMs = (opts.burst / opts.ratePerSecond) * 1000;
    this.lastSweep = this.now();
  }

  /** Keys with a bucket in memory (not yet refilled and dropped). */
  get size(): number {
    return this.buckets.size;
  }

  /** Tokens `key` could spend now. */
  available(key: string): number {
    const b = this.buckets.get(key);
    return b ? this.refilled(b, this.now()) : this.burst;
  }

  /** Milliseconds until `key` has `n` tokens (0: now), if nobody spends them meanwhile; Infinity when `n` exceeds the burst. */
  shortfallMs(key: string, n: number): number {
    if (n > this.burst) return Number.POSITIVE_INFINITY;
    const missing = n - this.available(key);
    return missing > 0 ? (missing / this.ratePerSecond) * 1000 : 0;
  }

  /**
   * Milliseconds until `key` has tokens for a call whose size is not known
   * yet: one token, or as many as its last refused take asked for (that
   * caller is likely to ask again). 0: now. Spends nothing.
   */
  nextShortfallMs(key: string): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    const missing = Math.max(1, b.asked) - this.refilled(b, this.now());
    return missing > 0 ? (missing / this.ratePerSecond) * 1000 : 0;
  }

  /**
   * Remembers that a call for `n` tokens of `key` was refused (see
   * nextShortfallMs), until a take succeeds. A call larger than the burst
   * is not remembered: it never fits, and waiting for it would refuse every
   * later call of the key until the bucket is full.
   */
  noteRefused(key: string, n: number): void {
    const b = this.buckets.get(key);
    if (b && n <= this.burst) b.asked = n;
  }

  /** Spends `n` tokens of `key` if it has them all; otherwise spends nothing. */
  take(key: string, n: number): TakeResult {
    const now = this.now();
    this.sweep(now);
    if (n > this.burst) return { ok: false, retryAfterMs: Number.POSITIVE_INFINITY };
    const b = this.buckets.get(key);
    const tokens = b ? this.refilled(b, now) : this.burst;
    if (tokens >= n) {
      if (b) {
        b.tokens = tokens - n;
        b.at = now;
        b.asked = 0;
      } else {
        this.buckets.set(key, { tokens: tokens - n, at: now, asked: 0 });
      }
      return { ok: true };
    }
    if (b) b.asked = n;
    return { ok: false, retryAfterMs: ((n - tokens) / this.ratePerSecond) * 1000 };
  }

  private refilled(b: Bucket, now: number): number {
    return Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerSecond);
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < this.fullAfterMs) return;
    this.lastSweep = now;
    for (const [key, b] of this.buckets) {
      if (this.refilled(b, now) >= this.burst) this.buckets.delete(key);
    }
  }
}
