// At most `perTenant` expensive reads (search with free text, export, stats)
// of one tenant at a time in this process. A call beyond that waits up to
// `maxWaitMs` for a slot, in arrival order, and is then refused: the caller
// answers RESOURCE_EXHAUSTED and the client retries later, instead of one
// tenant's burst holding every read connection.
//
// The count is per replica: with N replicas behind a load balancer a tenant
// can run up to N x perTenant such reads in all. The read pool of each
// replica bounds what they cost PostgreSQL there.

export class TenantBusyError extends Error {
  readonly limit: number;

  constructor(limit: number) {
    super(
      `too many expensive reads (searches with free text, exports, stats) of this tenant are running at once ` +
        `(at most ${limit} per server); retry in a few seconds`,
    );
    this.name = "TenantBusyError";
    this.limit = limit;
  }
}

type Waiter = { grant: () => void; timer: ReturnType<typeof setTimeout> };

export type TenantReadLimiterOptions = { perTenant: number; maxWaitMs: number };

export class TenantReadLimiter {
  private readonly perTenant: number;
  private readonly maxWaitMs: number;
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(opts: TenantReadLimiterOptions) {
    if (!(opts.perTenant >= 1)) throw new RangeError("perTenant must be at least 1");
    this.perTenant = opts.perTenant;
    this.maxWaitMs = opts.maxWaitMs;
  }

  /** Reads of `tenantId` running now. */
  active(tenantId: string): number {
    return this.running.get(tenantId) ?? 0;
  }

  /**
   * Resolves with a release function once `tenantId` has a free slot; rejects
   * with TenantBusyError after maxWaitMs, or with the signal's reason when it
   * aborts first. Call release exactly once (later calls do nothing).
   */
  acquire(tenantId: string, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.active(tenantId) < this.perTenant && !this.waiting.has(tenantId)) {
      this.running.set(tenantId, this.active(tenantId) + 1);
      return Promise.resolve(this.releaser(tenantId));
    }
    return new Promise((resolve, reject) => {
      const leave = () => {
        clearTimeout(waiter.timer);
        signal?.removeEventListener("abort", onAbort);
        const queue = this.waiting.get(tenantId);
        const at = queue ? queue.indexOf(waiter) : -1;
        if (at >= 0) queue!.splice(at, 1);
        if (queue && queue.length === 0) this.waiting.delete(tenantId);
      };
      const onAbort = () => {
        leave();
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        // Called by a release, which has already counted this call as running.
        grant: () => {
          leave();
          resolve(this.releaser(tenantId));
        },
        timer: setTimeout(() => {
          leave();
          reject(new TenantBusyError(this.perTenant));
        }, this.maxWaitMs),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const queue = this.waiting.get(tenantId) ?? [];
      queue.push(waiter);
      this.waiting.set(tenantId, queue);
    });
  }

  /** Runs `fn` holding a slot of `tenantId`. */
  async run<T>(tenantId: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(tenantId, signal);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  private releaser(tenantId: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.get(tenantId)?.[0];
      if (next) {
        next.grant(); // the slot passes on: the running count stays
        return;
      }
      const n = this.active(tenantId) - 1;
      if (n > 0) this.running.set(tenantId, n);
      else this.running.delete(tenantId);
    };
  }
}
