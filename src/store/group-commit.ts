// Group commit: events from many concurrent callers share one transaction.
// A caller is admitted only while fewer than `maxPendingEvents` events are
// queued or being written (backpressure: a slow PostgreSQL slows producers
// instead of growing memory), and its promise settles only when the
// transaction holding its events has committed or failed.
//
// Up to `lanes` transactions are written at once; whatever arrives meanwhile
// forms the next batches, so batches grow with load and latency stays low
// when idle. Submissions are queued by key (the tenant, `laneKey`): a key
// whose events are being written in one lane is never taken by another, so
// each key's submissions are committed one transaction after the other, in
// submission order, and two lanes never wait for each other's locks (a
// tenant's chain head). A batch takes one submission of each waiting key in
// turn (round robin), so a key with many or large submissions queued fills
// the batch only with what the others leave; while its own transaction
// runs, the other keys' events are written in another lane instead of
// waiting for it; and when several lanes are free, the waiting keys are
// spread over them, the lightest together (takeBatch).

export type CommitWriter<I, R> = (items: I[]) => Promise<R[]>;

type Entry<I, R> = { items: I[]; tag: unknown; resolve: (r: R[]) => void; reject: (e: unknown) => void };

export type GroupCommitOptions<I = unknown> = {
  /** Most events in one transaction. */
  maxBatchEvents: number;
  /** Most events admitted but not yet committed, across all callers. */
  maxPendingEvents: number;
  /** Most transactions written at once (default 1). */
  lanes?: number;
  /**
   * The key whose submissions are committed in order, one transaction at a
   * time (the tenant). Every item of one submission must have the same key.
   * None: all submissions share one key, so one batch is written at a time
   * whatever `lanes` says.
   */
  laneKey?: (item: I) => string;
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
  /** Submissions waiting, by key, each in submission order; a key is here only while it has some (the order of keys is the round robin's). */
  private queues = new Map<string, Entry<I, R>[]>();
  /** Keys whose events are being written, each in one lane. */
  private writingKeys = new Set<string>();
  private queuedEvents = 0;
  private inFlightEvents = 0;
  /** Admitted but not yet queued: room promised to a caller. */
  private reservedEvents = 0;
  /** Lanes writing a batch or about to take one. */
  private busyLanes = 0;
  /** A lane is about to take a batch (in the next turn of the event loop). */
  private starting = false;
  private closed = false;
  private waiters: { n: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private idle: (() => void)[] = [];
  private readonly writer: CommitWriter<I, R>;
  private readonly opts: GroupCommitOptions<I>;
  private readonly lanes: number;

  constructor(writer: CommitWriter<I, R>, opts: GroupCommitOptions<I>) {
    const lanes = opts.lanes ?? 1;
    if (!Number.isInteger(lanes) || lanes < 1) throw new RangeError("lanes must be a whole number of at least 1");
    this.writer = writer;
    this.opts = opts;
    this.lanes = lanes;
  }

  get pendingEvents(): number {
    return this.queuedEvents + this.inFlightEvents + this.reservedEvents;
  }

  /**
   * Waits until there is room for `items`, then queues them. The returned
   * `committed` promise settles with one result per item, in order. When
   * `signal` aborts while waiting for room, nothing is queued and the wait
   * rejects with its reason (a caller whose deadline passed stops waiting).
   * All `items` must have the same `laneKey`.
   */
  async submit(items: I[], signal?: AbortSignal): Promise<{ committed: Promise<R[]> }> {
    if (items.length > this.opts.maxPendingEvents) {
      throw new RangeError(`a submission of ${items.length} events exceeds maxPendingEvents`);
    }
    const key = this.keyOf(items);
    await this.admit(items.length, signal);
    const tag = this.opts.tag?.();
    const committed = new Promise<R[]>((resolve, reject) => {
      const entry = { items, tag, resolve, reject };
      const queue = this.queues.get(key);
      if (queue) queue.push(entry);
      else this.queues.set(key, [entry]);
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
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private keyOf(items: I[]): string {
    const { laneKey } = this.opts;
    if (!laneKey || items.length === 0) return "";
    const key = laneKey(items[0]!);
    for (const item of items) {
      if (laneKey(item) !== key) throw new RangeError("a submission's items must all have the same lane key");
    }
    return key;
  }

  private isIdle(): boolean {
    return this.busyLanes === 0 && this.queues.size === 0 && this.reservedEvents === 0;
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

  /** Starts a lane when one is free and something is queued; it takes its batch in the next turn of the event loop. */
  private kick(): void {
    if (this.starting || this.busyLanes >= this.lanes || this.queues.size === 0) return;
    this.starting = true;
    this.busyLanes++;
    // Let callers that are ready in this turn of the event loop join the batch.
    setImmediate(() => {
      this.starting = false;
      const batch = this.takeBatch();
      if (batch.entries.length === 0) {
        // Every queued key is being written in another lane; that lane kicks again when done.
        this.busyLanes--;
        this.settleIdle();
        return;
      }
      void this.write(batch);
      // What this batch left (keys that did not fit) may go to another lane.
      this.kick();
    });
  }

  /**
   * One submission of each key not being written, in turn, until the batch
   * is full: a key's next submission that does not fit ends that key's share
   * (its order is kept), the others go on. A submission larger than
   * maxBatchEvents is written whole and alone.
   *
   * When other lanes are free too, the waiting keys are spread over them
   * instead of all going into this batch, the keys with the fewest events
   * queued together: a tenant with little to write then does not share, and
   * wait for, the transaction of one with much.
   */
  private takeBatch(): { entries: Entry<I, R>[]; keys: ReadonlySet<string>; events: number } {
    const entries: Entry<I, R>[] = [];
    const keys = new Set<string>();
    let events = 0;
    let turn = [...this.queues.keys()].filter((k) => !this.writingKeys.has(k));
    // busyLanes counts this lane already.
    const freeLanes = this.lanes - this.busyLanes + 1;
    if (freeLanes > 1 && turn.length > 1) {
      const queued = new Map(turn.map((k) => [k, this.queues.get(k)!.reduce((n, e) => n + e.items.length, 0)]));
      turn = turn.sort((a, b) => queued.get(a)! - queued.get(b)!).slice(0, Math.ceil(turn.length / freeLanes));
    }
    while (turn.length > 0) {
      const next: string[] = [];
      for (const key of turn) {
        const queue = this.queues.get(key)!;
        const n = queue[0]!.items.length;
        if (entries.length > 0 && events + n > this.opts.maxBatchEvents) continue;
        entries.push(queue.shift()!);
        events += n;
        keys.add(key);
        if (queue.length > 0) next.push(key);
        else this.queues.delete(key);
      }
      turn = next;
    }
    for (const key of keys) {
      this.writingKeys.add(key);
      // Keys with submissions left go to the back of the round robin.
      const rest = this.queues.get(key);
      if (rest) {
        this.queues.delete(key);
        this.queues.set(key, rest);
      }
    }
    this.queuedEvents -= events;
    this.inFlightEvents += events;
    return { entries, keys, events };
  }

  private async write(batch: { entries: Entry<I, R>[]; keys: ReadonlySet<string>; events: number }): Promise<void> {
    const { entries, keys, events } = batch;
    const start = performance.now();
    let outcome: "ok" | "failed" = "failed";
    try {
      const items = entries.flatMap((e) => e.items);
      const { around } = this.opts;
      const results = around
        ? await around(
            entries.map((e) => e.tag),
            () => this.writer(items),
          )
        : await this.writer(items);
      if (results.length !== events) throw new Error(`writer returned ${results.length} results for ${events} items`);
      outcome = "ok";
      let offset = 0;
      for (const e of entries) {
        e.resolve(results.slice(offset, offset + e.items.length));
        offset += e.items.length;
      }
    } catch (err) {
      for (const e of entries) e.reject(err);
    } finally {
      this.opts.observe?.(events, (performance.now() - start) / 1000, outcome);
      this.inFlightEvents -= events;
      for (const key of keys) this.writingKeys.delete(key);
      this.busyLanes--;
      this.release();
      this.kick();
      this.settleIdle();
    }
  }

  private settleIdle(): void {
    if (this.closed && this.isIdle()) for (const f of this.idle.splice(0)) f();
  }
}
