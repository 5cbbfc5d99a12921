// The catch-up reads of the live tail, shared by the streams of one replica.
//
// A stream that starts or resumes behind the head reads the committed events
// after its position in pages of its own before it joins the feed. When many
// do so at once (every subscriber that a burst ended with RESOURCE_EXHAUSTED
// resumes), each reading, decoding and encoding the same events multiplied
// the cost of the burst by the number of subscribers, on the replica that was
// already behind. So pages are aligned on the tenant's sequences (gap-free:
// page k starts after sequence k * size), and streams near each other read
// the same pages: one read per page at a time (concurrent callers share it),
// and full pages are kept briefly (a few, bounded in events and in age), so
// their records are the same objects for every stream and are encoded once
// (tail-items.ts). Pages hold every event of the tenant (the tenant's
// row-level security applies); each stream applies its own filter.
import type { StoredRecord } from "../../domain/event-record.ts";

export type PageSource = {
  readAfter(tenantId: string, after: bigint, limit: number): Promise<StoredRecord[]>;
};

export type CatchUpPage = {
  /** The committed events after the position asked for, in sequence order (at most one page). */
  records: StoredRecord[];
  /** The page was full: more events may follow. Otherwise the reader reached the head. */
  full: boolean;
};

type Entry = { records: StoredRecord[]; at: number };

export class TailPages {
  private readonly source: PageSource;
  private readonly size: number;
  private readonly keep: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private readonly cached = new Map<string, Entry>();
  private readonly reading = new Map<string, Promise<StoredRecord[]>>();

  /** `size`: events per page; `keep`: full pages kept; `maxAgeMs`: how long a kept page is served. */
  constructor(source: PageSource, size: number, keep = 20, maxAgeMs = 5000, now: () => number = Date.now) {
    this.source = source;
    this.size = size;
    this.keep = keep;
    this.maxAgeMs = maxAgeMs;
    this.now = now;
  }

  /** The committed events after `position` (up to the end of its page). */
  async after(tenantId: string, position: bigint, signal?: AbortSignal): Promise<CatchUpPage> {
    const start = (position / BigInt(this.size)) * BigInt(this.size);
    const page = await this.page(tenantId, start);
    signal?.throwIfAborted();
    let i = 0;
    while (i < page.length && page[i]!.sequence <= position) i++;
    return { records: i === 0 ? page : page.slice(i), full: page.length === this.size };
  }

  private async page(tenantId: string, start: bigint): Promise<StoredRecord[]> {
    const key = `${tenantId}\u0000${start}`;
    const hit = this.cached.get(key);
    if (hit && this.now() - hit.at <= this.maxAgeMs) return hit.records;
    if (hit) this.cached.delete(key);
    let p = this.reading.get(key);
    if (!p) {
      // Not cancelled by one caller's signal: others may be waiting for it.
      p = this.source.readAfter(tenantId, start, this.size).finally(() => this.reading.delete(key));
      this.reading.set(key, p);
      const records = await p;
      // A page short of full is the head's: later commits add to it, so it is not kept.
      if (records.length === this.size) this.remember(key, records);
      return records;
    }
    return p;
  }

  private remember(key: string, records: StoredRecord[]): void {
    this.cached.set(key, { records, at: this.now() });
    for (const k of this.cached.keys()) {
      if (this.cached.size <= this.keep) break;
      this.cached.delete(k);
    }
  }
}
