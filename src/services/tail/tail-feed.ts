// The live tail's fan-out on one replica: the commit listener says which
// tenants moved; for each tenant with subscribers, one reader at a time
// reads the committed events after the lowest position its subscribers
// have examined, in bounded batches, through the read pool with row-level
// security, and hands them to every subscriber (src/domain/tail-subscribers.ts).
// One PostgreSQL read per tenant per batch, however many subscribers.
import type { StoredRecord } from "../../domain/event-record.ts";
import { TailRegistry, TailSubscriber } from "../../domain/tail-subscribers.ts";
import type { Logger } from "../../platform/log.ts";
import { TailPages } from "./tail-pages.ts";

export type TailSource = {
  readAfter(tenantId: string, after: bigint, limit: number): Promise<StoredRecord[]>;
};

export type TailFeedOptions = {
  /** Events per read. */
  batchSize: number;
  /** Matching events one subscriber may have waiting before it is ended. */
  bufferLimit: number;
  /** Reads every tenant with subscribers this often even without a notification (a lost NOTIFY costs at most this). */
  pollMs: number;
  /** Starts the commit listener (called on the first subscription). */
  listen?: () => Promise<void>;
};

type TenantPump = { running: boolean; again: boolean; failures: number };

export class TailFeed {
  readonly registry = new TailRegistry();
  /** Catch-up reads of the streams that start behind the head, shared (tail-pages.ts). */
  readonly pages: TailPages;
  private readonly source: TailSource;
  private readonly opts: TailFeedOptions;
  private readonly log: Logger;
  private readonly pumps = new Map<string, TenantPump>();
  private poller: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(source: TailSource, log: Logger, opts: TailFeedOptions) {
    this.source = source;
    this.log = log;
    this.opts = opts;
    this.pages = new TailPages(source, opts.batchSize);
  }

  /** Registers a subscriber that has examined every event up to `position`. */
  async subscribe(tenantId: string, position: bigint, matches: (r: StoredRecord) => boolean): Promise<TailSubscriber> {
    await this.opts.listen?.();
    const s = new TailSubscriber(tenantId, position, matches, this.opts.bufferLimit);
    this.registry.add(s);
    if (!this.poller && !this.closed) {
      this.poller = setInterval(() => this.onCommit(null), this.opts.pollMs);
      this.poller.unref();
    }
    // Whatever was committed between its catch-up read and now.
    this.wake(tenantId);
    return s;
  }

  unsubscribe(s: TailSubscriber): void {
    this.registry.remove(s);
    if (this.registry.count() === 0 && this.poller) {
      clearInterval(this.poller);
      this.poller = null;
    }
  }

  /** From the commit listener: these tenants moved to these heads (null: any tenant may have). */
  onCommit(heads: Map<string, bigint> | null): void {
    if (heads === null) {
      for (const t of this.registry.tenants()) this.wake(t);
      return;
    }
    for (const [t, head] of heads) {
      const low = this.registry.lowestPosition(t);
      if (low !== null && low < head) this.wake(t);
    }
  }

  close(): void {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
  }

  private wake(tenantId: string): void {
    let p = this.pumps.get(tenantId);
    if (!p) {
      p = { running: false, again: false, failures: 0 };
      this.pumps.set(tenantId, p);
    }
    if (p.running) {
      p.again = true;
      return;
    }
    p.running = true;
    void this.pump(tenantId, p);
  }

  private async pump(tenantId: string, p: TenantPump): Promise<void> {
    try {
      for (;;) {
        p.again = false;
        const low = this.registry.lowestPosition(tenantId);
        if (low === null || this.closed) break;
        const records = await this.source.readAfter(tenantId, low, this.opts.batchSize);
        p.failures = 0;
        // A subscriber that joined behind `low` during the read is read for next.
        const behind = this.registry.deliver(tenantId, low, records);
        if (records.length < this.opts.batchSize && !p.again && !behind) break;
        // A burst: let the streams write what was queued before the next read.
        if (records.length === this.opts.batchSize) await new Promise((r) => setImmediate(r));
      }
      p.running = false;
      if (this.registry.count(tenantId) === 0) this.pumps.delete(tenantId);
    } catch (err) {
      // Storage trouble: subscribers keep their positions and wait; the
      // read is retried with backoff (a stream's heartbeats go on meanwhile).
      p.failures++;
      const delay = Math.min(100 * 2 ** Math.min(p.failures, 6), 5000);
      this.log.warn("tail: reading committed events failed; retrying", {
        tenantId,
        err: (err as Error).message,
        retryInMs: delay,
      });
      setTimeout(() => {
        p.running = false;
        if (!this.closed) this.wake(tenantId);
      }, delay).unref();
    }
  }
}
