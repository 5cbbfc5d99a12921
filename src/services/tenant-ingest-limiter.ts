// Events per second one tenant may submit to this process (a token bucket
// per tenant, src/domain/token-bucket.ts), so that one tenant cannot take
// the whole group commit and event loop from the others.
//
// The bucket is per replica: with N replicas behind a load balancer a tenant
// can submit up to N x the rate in all, each replica protecting its own
// event loop and its share of the PostgreSQL write pool.
import { KeyedTokenBuckets } from "../domain/token-bucket.ts";

export class TenantIngestLimitError extends Error {
  /** Infinity when the batch is larger than the burst and can never be admitted. */
  readonly retryAfterMs: number;

  constructor(events: number, ratePerSecond: number, burst: number, retryAfterMs: number) {
    super(
      Number.isFinite(retryAfterMs)
        ? `this tenant is over its ingest rate (${ratePerSecond} events/s per server, bursts of up to ${burst}); ` +
            `retry after ${(Math.ceil(retryAfterMs / 100) / 10).toFixed(1)} s`
        : `${events} events in one message exceed this tenant's largest burst (${burst} events per server) and can never be ` +
            `accepted at once; send at most ${burst} per message`,
    );
    this.name = "TenantIngestLimitError";
    this.retryAfterMs = retryAfterMs;
  }
}

export type TenantIngestLimiterOptions = {
  /** Events per second per tenant; 0: no limit. */
  ratePerSecond: number;
  burst: number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
};

const sleepFor = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    signal?.throwIfAborted();
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

export class TenantIngestLimiter {
  private readonly buckets: KeyedTokenBuckets | null;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(opts: TenantIngestLimiterOptions) {
    this.buckets =
      opts.ratePerSecond > 0 ? new KeyedTokenBuckets({ ratePerSecond: opts.ratePerSecond, burst: opts.burst, now: opts.now }) : null;
    this.now = opts.now ?? (() => performance.now());
    this.sleep = opts.sleep ?? sleepFor;
  }

  /** Tenants with a bucket in memory. */
  get tracked(): number {
    return this.buckets?.size ?? 0;
  }

  /** Admits `events` of `tenantId` now, or throws TenantIngestLimitError saying when to retry (for unary calls). */
  admit(tenantId: string, events: number): void {
    if (!this.buckets) return;
    const r = this.buckets.take(tenantId, events);
    if (!r.ok) throw new TenantIngestLimitError(events, this.buckets.ratePerSecond, this.buckets.burst, r.retryAfterMs);
  }

  /**
   * Admits `events` of `tenantId`, waiting up to `maxWaitMs` for the tokens
   * (for streams: meanwhile the stream is not read, which pushes back on the
   * producer), then throws TenantIngestLimitError.
   */
  async admitWaiting(tenantId: string, events: number, maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    if (!this.buckets) return;
    const deadline = this.now() + maxWaitMs;
    for (;;) {
      const r = this.buckets.take(tenantId, events);
      if (r.ok) return;
      // Another stream of the tenant may take the tokens first: ask again after waking.
      const left = deadline - this.now();
      if (r.retryAfterMs > left) {
        throw new TenantIngestLimitError(events, this.buckets.ratePerSecond, this.buckets.burst, r.retryAfterMs);
      }
      await this.sleep(Math.max(1, Math.ceil(r.retryAfterMs)), signal);
    }
  }
}
