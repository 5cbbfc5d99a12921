// Group commit: events from many concurrent callers share one transaction.
// A caller is admitted only while fewer than `maxPendingEvents` events are
// queued or being written (backpressure: a slow PostgreSQL slows producers
// instead of growing memory), and its promise settles only when the
// transaction holding its events has committed or failed.
//
// One batch is written at a time; whatever arrives meanwhile forms the next
// batch, so batches grow with load and latency stays low when idle.

export type CommitWriter<I, R> = (items: I[]) => Promise<R[]>;

type Entry<I, R> = { items: I[]; tag: unknown; resolve: (r: R[]) => void; reject: (e: unknown) => void };

export type GroupCommitOptions = {
  /** Most events in one transaction. */
  maxBatchEvents: number;
  /** Most events admitted but not yet committed, across all callers. */
  maxPendingEvents: number;
  /** Called after each transaction: its events, its duration, and whether it committed (metrics). */
  observe?: (events: number, seconds: number, outcome: "ok" | "failed") => void;
  /**
   * Taken from each caller at submit (e.g. its trace span); the writer of
   * the batch that holds its events runs inside `around`, which receives the
   * tags of the batch's callers (tracing: a batch span linked to them).
   */
  tag?: () => unknown;
  around?: <T>(tags: unknown[], write: () => Promise<T>) => Promise<T>;
};

export class ClosedError extends Error {
  constructor() {
    super("the service is shutting down");
  }
}

export class GroupCommitter<I, R> {
  private queue: Entry<I, R>[] = [];
  private queuedEvents = 0;
  private inFlightEvents = 0;
  /** Admitted but not yet queued: room promised to a caller. */
  private reservedEvents = 0;
  private writing = false;
  private closed = false;
  private waiters: { n: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private idle: (() => void)[] = [];
  private readonly writer: CommitWriter<I, R>;
  private readonly opts: GroupCommitOptions;

  constructor(writer: CommitWriter<I, R>, opts: GroupCommitOptions) {
    this.writer = writer;
    this.opts = opts;
  }

  get pendingEvents(): number {
    return this.queuedEvents + this.inFlightEvents + this.reservedEvents;
  }

  /**
   * Waits until there is room for `items`, then queues them. The returned
   * `committed` promise settles with one result per item, in order. When
   * `signal` aborts while waiting for room, nothing is queued and the wait
   * rejects with its reason (a caller whose deadline passed stops waiting).
   */
  async submit(items: I[], signal?: AbortSignal): Promise<{ committed: Promise<R[]> }> {
    if (items.length > this.opts.maxPendingEvents) {
      throw new RangeError(`a submission of ${items.length} events exceeds maxPendingEvents`);
    }
    await this.admit(items.length, signal);
    const tag = this.opts.tag?.();
    const committed = new Promise<R[]>((resolve, reject) => {
      this.queue.push({ items, tag, resolve, reject });
    });
    this.reservedEvents -= items.length;
    this.queuedEvents += items.length;
    this.kick();
    return { committed };
  }

  /** Stops admitting, writes everything queued, and resolves when done. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new ClosedError());
    if (!this.writing && this.queue.length === 0 && this.reservedEvents === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private admit(n: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiters.length === 0 && this.pendingEvents + n <= this.opts.maxPendingEvents) {
      this.reservedEvents += n;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const at = this.waiters.indexOf(waiter);
        if (at < 0) return;
        this.waiters.splice(at, 1);
        // Smaller waiters behind it may fit now.
        this.release();
        reject(signal!.reason);
      };
      const waiter = {
        n,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (e: unknown) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private release(): void {
    // FIFO: a large waiter is not starved by small ones behind it.
    while (this.waiters.length > 0 && this.pendingEvents + this.waiters[0]!.n <= this.opts.maxPendingEvents) {
      const w = this.waiters.shift()!;
      // Reserve its room now so the next waiter sees it taken.
      this.reservedEvents += w.n;
      w.resolve();
    }
  }

  private kick(): void {
    if (this.writing || this.queue.length === 0) return;
    this.writing = true;
    // Let callers that are ready in this turn of the event loop join the batch.
    setImmediate(() => void this.writeNext());
  }

  private takeBatch(): Entry<I, R>[] {
    const batch: Entry<I, R>[] = [];
    let n = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (batch.length > 0 && n + next.items.length > this.opts.maxBatchEvents) break;
      batch.push(this.queue.shift()!);
      n += next.items.length;
    }
    return batch;
  }

  private async writeNext(): Promise<void> {
    const batch = this.takeBatch();
    const count = batch.reduce((s, e) => s + e.items.length, 0);
    this.queuedEvents -= count;
    this.inFlightEvents += count;
    const start = performance.now();
    let outcome: "ok" | "failed" = "failed";
    try {
      const items = batch.flatMap((e) => e.items);
      const { around } = this.opts;
      const results = around
        ? await around(
            batch.map((e) => e.tag),
            () => this.writer(items),
          )
        : await this.writer(items);
      if (results.length !== count) throw new Error(`writer returned ${results.length} results for ${count} items`);
      outcome = "ok";
      let offset = 0;
      for (const e of batch) {
        e.resolve(results.slice(offset, offset + e.items.length));
        offset += e.items.length;
      }
    } catch (err) {
      for (const e of batch) e.reject(err);
    } finally {
      this.opts.observe?.(count, (performance.now() - start) / 1000, outcome);
      this.inFlightEvents -= count;
      this.writing = false;
      this.release();
      if (this.queue.length > 0) this.kick();
      else if (this.closed && this.reservedEvents === 0) for (const f of this.idle.splice(0)) f();
    }
  }
}
