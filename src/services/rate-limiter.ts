// Rates per tenant and per caller (an API key today; a token's subject
// later: any string the principal gives), each a token bucket
// (src/domain/token-bucket.ts): so that one tenant, or one leaked or runaway
// key of a tenant, cannot take the group commit, the read pool and the event
// loop from the others. One RateLimiter per kind of work: ingest counts
// events, reads count requests.
//
// The buckets are per replica: with N replicas behind a load balancer a
// tenant or key can spend up to N x the rate in all, each replica
// protecting its own event loop and its share of PostgreSQL.
import { KeyedTokenBuckets } from "../domain/token-bucket.ts";

export type RateLimit = {
  /** Tokens per second; 0: no limit. */
  ratePerSecond: number;
  /** Most tokens spent at once (the bucket's size). */
  burst: number;
};

/** Whose buckets a call spends: its tenant's and its own. */
export type RateSubject = { tenantId: string; key: string };

export type RateScope = "tenant" | "key";

const SCOPE_NAME: Record<RateScope, string> = { tenant: "this tenant", key: "this API key" };

/** Over a rate: RESOURCE_EXHAUSTED, with the delay after which the same call would fit. */
export class RateLimitError extends Error {
  /** Whose limit it is. */
  readonly scope: RateScope;
  /** Milliseconds after which the call would fit; Infinity when it is larger than the burst and can never be admitted. */
  readonly retryAfterMs: number;

  constructor(work: string, unit: string, scope: RateScope, n: number, limit: RateLimit, retryAfterMs: number) {
    super(
      Number.isFinite(retryAfterMs)
        ? `${SCOPE_NAME[scope]} is over its ${work} rate (${limit.ratePerSecond} ${unit}/s per server, bursts of up to ${limit.burst}); ` +
            `retry after ${(Math.ceil(retryAfterMs / 100) / 10).toFixed(1)} s`
        : `${n} ${unit} in one message exceed ${SCOPE_NAME[scope]}'s largest ${work} burst (${limit.burst} ${unit} per server) and ` +
            `can never be accepted at once; send at most ${limit.burst} per message`,
    );
    this.name = "RateLimitError";
    this.scope = scope;
    this.retryAfterMs = retryAfterMs;
  }
}

export type RateLimiterOptions = {
  /** What is limited, for messages: "ingest", "read". */
  work: string;
  /** What a token is, for messages: "events", "requests". */
  unit: string;
  perTenant: RateLimit;
  perKey: RateLimit;
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

type Level = { scope: RateScope; limit: RateLimit; buckets: KeyedTokenBuckets };

export class RateLimiter {
  private readonly levels: Level[];
  private readonly work: string;
  private readonly unit: string;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(opts: RateLimiterOptions) {
    this.work = opts.work;
    this.unit = opts.unit;
    this.now = opts.now ?? (() => performance.now());
    this.sleep = opts.sleep ?? sleepFor;
    const level = (scope: RateScope, limit: RateLimit): Level[] =>
      limit.ratePerSecond > 0
        ? [{ scope, limit, buckets: new KeyedTokenBuckets({ ratePerSecond: limit.ratePerSecond, burst: limit.burst, now: opts.now }) }]
        : [];
    this.levels = [...level("tenant", opts.perTenant), ...level("key", opts.perKey)];
  }

  /** Whether any limit is set (0 everywhere: every call is admitted without work). */
  get limited(): boolean {
    return this.levels.length > 0;
  }

  /** Buckets in memory (tenants and keys not yet refilled). */
  get tracked(): number {
    return this.levels.reduce((n, l) => n + l.buckets.size, 0);
  }

  /** Admits `n` tokens of `subject` now, or throws RateLimitError saying when to retry (for unary calls). */
  admit(subject: RateSubject, n: number): void {
    const refusal = this.tryTake(subject, n);
    if (refusal) throw refusal;
  }

  /**
   * Admits `n` tokens of `subject`, waiting up to `maxWaitMs` for them (for
   * streams: meanwhile the stream is not read, which pushes back on the
   * producer), then throws RateLimitError.
   */
  async admitWaiting(subject: RateSubject, n: number, maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    if (!this.limited) return;
    const deadline = this.now() + maxWaitMs;
    for (;;) {
      const refusal = this.tryTake(subject, n);
      if (!refusal) return;
      // Another call of the tenant or key may take the tokens first: ask again after waking.
      if (refusal.retryAfterMs > deadline - this.now()) throw refusal;
      await this.sleep(Math.max(1, Math.ceil(refusal.retryAfterMs)), signal);
    }
  }

  /**
   * The refusal a call of `subject` whose size is not known yet would get
   * now, or null; spends nothing. A call is assumed to ask for one token, or
   * for as many as the subject's last refused call asked (token-bucket.ts,
   * nextShortfallMs): a client looping on refused Appends of 100 events is
   * refused here until 100 have refilled, not let through each time one
   * token has. For the transport, which refuses an Append over the rate
   * before decoding its body (src/server/request-gate.ts).
   */
  exhausted(subject: RateSubject): RateLimitError | null {
    let worst: { level: Level; ms: number } | null = null;
    for (const level of this.levels) {
      const ms = level.buckets.nextShortfallMs(this.keyOf(level, subject));
      if (ms > 0 && (!worst || ms > worst.ms)) worst = { level, ms };
    }
    // The size only shows in the message of a call larger than the burst, which a finite delay never is.
    return worst ? new RateLimitError(this.work, this.unit, worst.level.scope, 1, worst.level.limit, worst.ms) : null;
  }

  /** Spends from every level, or from none: then the refusal of the level that frees up last. */
  private tryTake(subject: RateSubject, n: number): RateLimitError | null {
    let worst: { level: Level; ms: number } | null = null;
    for (const level of this.levels) {
      const ms = level.buckets.shortfallMs(this.keyOf(level, subject), n);
      if (ms <= 0) continue;
      // The levels short of tokens remember the call's size, for exhausted().
      level.buckets.noteRefused(this.keyOf(level, subject), n);
      if (!worst || ms > worst.ms) worst = { level, ms };
    }
    if (worst) return new RateLimitError(this.work, this.unit, worst.level.scope, n, worst.level.limit, worst.ms);
    for (const level of this.levels) level.buckets.take(this.keyOf(level, subject), n);
    return null;
  }

  private keyOf(level: Level, subject: RateSubject): string {
    return level.scope === "tenant" ? subject.tenantId : subject.key;
  }
}
