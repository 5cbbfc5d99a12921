// The subscribers of the live tail (QueryService.TailEvents) of one replica,
// per tenant, and what each still has to send. Pure: the feed that reads
// committed events from PostgreSQL hands them in (deliver), each stream
// takes them out (next), and nothing here does I/O or keeps time.
//
// Positions are tenant sequences: gap-free and assigned in commit order, so
// "every event up to N has been examined" is a complete statement and a
// stream can resume after any position it was told, on any replica.
import type { StoredRecord } from "./event-record.ts";

/** A subscriber's buffer was full: it read too slowly and must resume from `resumePosition`. */
export class TailOverflowError extends Error {
  readonly resumePosition: bigint;

  constructor(resumePosition: bigint, bufferLimit: number) {
    super(
      `the tail client read too slowly: more than ${bufferLimit} events were waiting for it; ` +
        `reconnect with after_position ${resumePosition} to resume without a gap`,
    );
    this.name = "TailOverflowError";
    this.resumePosition = resumePosition;
  }
}

export class TailSubscriber {
  readonly tenantId: string;
  /** Every event up to here has been examined; matching ones are queued or taken. */
  position: bigint;
  /** Set when the buffer overflowed; the stream ends with it once the queue is taken. */
  failure: TailOverflowError | null = null;
  /** Called when an event was queued or the subscriber failed (the stream waits on it). */
  onReady: (() => void) | null = null;
  private readonly matches: (r: StoredRecord) => boolean;
  private readonly limit: number;
  private queue: StoredRecord[] = [];
  private head = 0;
  /** The position the client has been handed (by an event or a heartbeat). */
  private taken: bigint;

  constructor(tenantId: string, position: bigint, matches: (r: StoredRecord) => boolean, bufferLimit: number) {
    this.tenantId = tenantId;
    this.position = position;
    this.taken = position;
    this.matches = matches;
    this.limit = bufferLimit;
  }

  get buffered(): number {
    return this.queue.length - this.head;
  }

  /** Examines one committed event after `position`. */
  offer(r: StoredRecord): void {
    if (this.failure || r.sequence <= this.position) return;
    if (this.matches(r)) {
      if (this.buffered >= this.limit) {
        // Drop what is queued: memory stays bounded, and the client resumes
        // from what it was actually handed.
        this.failure = new TailOverflowError(this.taken, this.limit);
        this.queue = [];
        this.head = 0;
        this.onReady?.();
        return;
      }
      this.queue.push(r);
      this.position = r.sequence;
      this.onReady?.();
      return;
    }
    this.position = r.sequence;
  }

  /** The next queued event, or undefined. */
  next(): StoredRecord | undefined {
    if (this.head >= this.queue.length) return undefined;
    const r = this.queue[this.head]!;
    this.queue[this.head++] = undefined as unknown as StoredRecord;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.taken = r.sequence;
    return r;
  }

  /** With nothing queued: the position a heartbeat may claim (every match up to it was handed over). */
  idlePosition(): bigint | null {
    if (this.buffered > 0 || this.failure) return null;
    this.taken = this.position;
    return this.position;
  }
}

/** The subscribers of each tenant. */
export class TailRegistry {
  private readonly byTenant = new Map<string, Set<TailSubscriber>>();

  add(s: TailSubscriber): void {
    let set = this.byTenant.get(s.tenantId);
    if (!set) {
      set = new Set();
      this.byTenant.set(s.tenantId, set);
    }
    set.add(s);
  }

  remove(s: TailSubscriber): void {
    const set = this.byTenant.get(s.tenantId);
    if (!set) return;
    set.delete(s);
    if (set.size === 0) this.byTenant.delete(s.tenantId);
  }

  tenants(): string[] {
    return [...this.byTenant.keys()];
  }

  count(tenantId?: string): number {
    if (tenantId !== undefined) return this.byTenant.get(tenantId)?.size ?? 0;
    let n = 0;
    for (const set of this.byTenant.values()) n += set.size;
    return n;
  }

  /** The lowest position a live subscriber of the tenant has examined (where the next read starts), or null. */
  lowestPosition(tenantId: string): bigint | null {
    let low: bigint | null = null;
    for (const s of this.byTenant.get(tenantId) ?? []) {
      if (s.failure) continue;
      if (low === null || s.position < low) low = s.position;
    }
    return low;
  }

  /**
   * Hands the committed events of one tenant after position `after` (all
   * of them, up to some point, in sequence order) to each of its
   * subscribers; those whose buffer overflows are failed and removed.
   * A subscriber behind `after` (it joined while this read was under way)
   * is skipped: the events between its position and `after` are not here,
   * and taking later ones would skip them. Returns whether there was one
   * (the events after its position must then be read for it).
   */
  deliver(tenantId: string, after: bigint, records: readonly StoredRecord[]): boolean {
    const set = this.byTenant.get(tenantId);
    if (!set) return false;
    let behind = false;
    for (const s of set) {
      if (s.position < after) {
        behind ||= !s.failure;
        continue;
      }
      for (const r of records) {
        s.offer(r);
        if (s.failure) break;
      }
      if (s.failure) this.remove(s);
    }
    return behind;
  }
}
