// Group commit: events from many concurrent callers share one transaction.
// A caller is admitted only while fewer than `maxPendingEvents` events are
// queued or being written (backpressure: a slow PostgreSQL slows producers
// instead of growing memory), and its promise settles only when the
// transaction holding its events has committed or failed.
//
// One batch is written at a time; whatever arrives meanwhile forms the next
// batch, so batches grow with load and latency stays low when idle.

export type CommitWriter<I, R> = (items: I[]) => Promise<R[]>;

type Entry<I, R> = { items: I[]; resolve: (r: R[]) => void; reject: (e: unknown) => void };

export type GroupCommitOptions = {
  /** Most events in one transaction. */
  maxBatchEvents: number;
  /** Most events admitted but not yet committed, across all callers. */
  maxPendingEvents: number;
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
   * `committed` promise settles with one result per item, in order.
   */
  async submit(items: I[]): Promise<{ committed: Promise<R[]> }> {
    if (items.length > this.opts.maxPendingEvents) {
      throw new RangeError(`a submission of ${items.length} events exceeds maxPendingEvents`);
    }
    await this.admit(items.length);
    const committed = new Promise<R[]>((resolve, reject) => {
      this.queue.push({ items, resolve, reject });
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

  private admit(n: number): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError());
    if (this.waiters.length === 0 && this.pendingEvents + n <= this.opts.maxPendingEvents) {
      this.reservedEvents += n;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiters.push({ n, resolve, reject }));
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
    try {
      const results = await this.writer(batch.flatMap((e) => e.items));
      if (results.length !== count) throw new Error(`writer returned ${results.length} results for ${count} items`);
      let offset = 0;
      for (const e of batch) {
        e.resolve(results.slice(offset, offset + e.items.length));
        offset += e.items.length;
      }
    } catch (err) {
      for (const e of batch) e.reject(err);
    } finally {
      this.inFlightEvents -= count;
      this.writing = false;
      this.release();
      if (this.queue.length > 0) this.kick();
      else if (this.closed && this.reservedEvents === 0) for (const f of this.idle.splice(0)) f();
    }
  }
}
