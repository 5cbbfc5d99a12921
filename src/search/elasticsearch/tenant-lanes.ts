// The indexer's per-tenant work, while it leads: one lane per tenant with
// events waiting. A lane reads the tenant's events after its progress in
// sequence order, sends them in bulk requests (several in flight, settled in
// order), tells documents Elasticsearch refused for their content from
// writes the cluster refused (index-failures.ts), and advances the progress
// compare-and-set, with the refusals, in src/store/index-progress.ts.
// Leadership, wake-ups and global backoff are indexer.ts's; it calls in
// here and hears back through the hooks.
import type { Client, estypes } from "@elastic/elasticsearch";
import type { Pool } from "pg";
import type { Logger } from "../../platform/log.ts";
import { withSpan } from "../../platform/tracing.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../store/event-rows.ts";
import { advanceProgress, headsAndProgress, type Refusal } from "../../store/index-progress.ts";
import { systemQuery } from "../../store/system-scope.ts";
import { documentFromRecord, documentId } from "./event-document.ts";
import { classifyItemFailure, type ItemFailure, refusalReason } from "./index-failures.ts";
import type { IndexNames } from "./index-names.ts";

/** A bulk request (with its refresh wait) taking longer counts as failed and is retried. */
const BULK_TIMEOUT_MS = 60_000;

/** A tenant whose next event the cluster keeps refusing (not for its content): progress holds before it. */
export type StuckTenant = {
  tenantId: string;
  sequence: bigint;
  eventId: string;
  failures: number;
  error: string;
};

type Lane = {
  tenantId: string;
  /** Last chain head seen. */
  head: bigint;
  /** index_progress.indexed_sequence as last written or read. */
  committed: bigint;
  /** Last sequence read and dispatched (>= committed). */
  readFrom: bigint;
  /** Incremented when dispatched work must be discarded (a failure, progress changed elsewhere). */
  epoch: number;
  inflight: number;
  /** Settles (never rejects) when the lane's last dispatched batch is done. */
  tail: Promise<void>;
  /** Not before (ms since epoch): lane-level backoff. */
  retryAt: number;
  /** Re-read progress from the database before the next batch. */
  resync: boolean;
  /** Progress writes by this instance: a scan's reading is only trusted if none happened during it. */
  commits: number;
  failures: number;
  stuck: StuckTenant | null;
};

type BulkOutcome = { kind: "ok" } | { kind: "error"; err: unknown } | { kind: "items"; failed: (ItemFailure & { index: number })[] };

/** What settling a bulk request needs of each event in it. */
type DocRef = { sequence: string; id: string };

/** Characters of NDJSON turned into bytes at a time while a bulk body is built. */
const BODY_PIECE_CHARS = 64 * 1024;

/**
 * Events read from PostgreSQL at a time for one bulk request. A batch's
 * rows read at once (2,000 parsed rows, several MB of objects) outlived a
 * few young-generation collections and were promoted, only to die: read in
 * parts and made into bytes as they come, they die young.
 */
const READ_CHUNK = 250;

/**
 * A bulk request body (action line, then document, per event), serialized
 * once into bytes as rows are added. The client sends a Buffer as it is;
 * given lines, it would keep them and their joined copy, as strings on the
 * heap, for as long as the request is in flight. The text becomes bytes a
 * piece at a time, so no string of the whole batch lives long enough to be
 * promoted to the old generation (docs/PERFORMANCE.md, "Round two: memory").
 */
export class BulkBody {
  private readonly names: IndexNames;
  private readonly tenantId: string;
  private readonly pieces: Buffer[] = [];
  private text = "";

  constructor(names: IndexNames, tenantId: string) {
    this.names = names;
    this.tenantId = tenantId;
  }

  add(row: EventRow): void {
    const doc = documentFromRecord(recordFromRow(row));
    const action = {
      index: { _index: this.names.indexFor(doc.received_at), _id: documentId(this.tenantId, doc.id), routing: this.tenantId },
    };
    this.text += `${JSON.stringify(action)}\n${JSON.stringify(doc)}\n`;
    if (this.text.length >= BODY_PIECE_CHARS) this.flush();
  }

  bytes(): Buffer {
    this.flush();
    return this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces);
  }

  private flush(): void {
    if (this.text === "") return;
    this.pieces.push(Buffer.from(this.text));
    this.text = "";
  }
}

export type LaneHooks = {
  /** Elasticsearch or PostgreSQL failed as a whole: the indexer backs off everything. */
  failed(err: unknown): void;
  /** Some tenant's progress moved. */
  moved(): void;
  /** Why indexing does not move, as seen now. */
  problem(error: string): void;
  /** A batch went through without a cluster-side refusal. */
  healthy(): void;
  /** Backoff delay for the attempt-th failure. */
  backoff(attempt: number): number;
};

export type TenantLanesOptions = {
  pool: Pool;
  client: Client;
  log: Logger;
  names: IndexNames;
  batchSize: number;
  /** Bulk requests in flight at once, over all lanes. */
  concurrency: number;
  /** Bytes of bulk bodies in flight at most (see hasRoom). */
  maxInflightBytes: number;
  /** How long to wait before looking again at a hole in the sequences that is not explained. */
  holeRetryMs: number;
  /** After this many failed attempts of a batch that the cluster keeps refusing, its tenant is reported as stuck. */
  maxDocumentFailures: number;
  hooks: LaneHooks;
};

export class TenantLanes {
  private readonly pool: Pool;
  private readonly client: Client;
  private readonly log: Logger;
  private readonly names: IndexNames;
  private readonly batchSize: number;
  private readonly concurrency: number;
  private readonly maxInflightBytes: number;
  private readonly holeRetryMs: number;
  private readonly maxDocumentFailures: number;
  private readonly hooks: LaneHooks;

  private lanes = new Map<string, Lane>();
  private order: string[] = [];
  private cursor = 0;
  /** Batches dispatched and not yet settled, over all lanes. */
  readonly inflight = new Set<Promise<void>>();
  /** The bulk bodies of those batches, in bytes. */
  private inflightBytes = 0;
  readonly stats = { eventsIndexed: 0, bulkRequests: 0, eventsRefused: 0 };

  constructor(opts: TenantLanesOptions) {
    this.pool = opts.pool;
    this.client = opts.client;
    this.log = opts.log;
    this.names = opts.names;
    this.batchSize = opts.batchSize;
    this.concurrency = opts.concurrency;
    this.maxInflightBytes = opts.maxInflightBytes;
    this.holeRetryMs = opts.holeRetryMs;
    this.maxDocumentFailures = opts.maxDocumentFailures;
    this.hooks = opts.hooks;
  }

  /**
   * Whether another batch may be dispatched: fewer than `concurrency` in
   * flight, and their bodies under `maxInflightBytes` (at least one batch is
   * always allowed, however large), so that the memory they hold is bounded
   * whatever the size of the events.
   */
  hasRoom(): boolean {
    return this.inflight.size === 0 || (this.inflight.size < this.concurrency && this.inflightBytes < this.maxInflightBytes);
  }

  /** Forgets every lane (a new term as leader reads progress afresh). */
  clear(): void {
    this.lanes.clear();
    this.order = [];
    this.cursor = 0;
  }

  /** Discards the dispatched work of every lane. */
  resetAll(): void {
    for (const lane of this.lanes.values()) this.resetLane(lane, false);
  }

  /** The earliest lane retry time after `now` that is sooner than `wait` ms, as a wait. */
  nextRetryWait(now: number, wait: number): number {
    for (const l of this.lanes.values()) if (l.head > l.committed && l.retryAt > now) wait = Math.min(wait, l.retryAt - now);
    return wait;
  }

  /** Tenants whose next event the cluster keeps refusing (progress is held before that event). */
  stuckTenants(): StuckTenant[] {
    return [...this.lanes.values()].flatMap((l) => (l.stuck ? [{ ...l.stuck }] : []));
  }

  /** Tenants behind: update heads; take progress from the database for idle lanes. */
  async scan(): Promise<void> {
    const commitsBefore = new Map([...this.lanes].map(([t, l]) => [t, l.commits]));
    for (const r of await headsAndProgress(this.pool)) {
      const { head, indexed } = r;
      let lane = this.lanes.get(r.tenantId);
      if (!lane) {
        if (head <= indexed) continue;
        lane = {
          tenantId: r.tenantId,
          head,
          committed: indexed,
          readFrom: indexed,
          epoch: 0,
          inflight: 0,
          tail: Promise.resolve(),
          retryAt: 0,
          resync: false,
          commits: 0,
          stuck: null,
          failures: 0,
        };
        commitsBefore.set(r.tenantId, 0);
        this.lanes.set(r.tenantId, lane);
        this.order.push(r.tenantId);
      }
      lane.head = head;
      const fresh = commitsBefore.get(r.tenantId) === lane.commits; // no progress write of ours raced the read
      if (lane.inflight === 0 && fresh && (lane.resync || indexed !== lane.committed)) {
        // Someone else moved progress (a reset for re-delivery, another
        // indexer during a lock hand-over): theirs is the truth.
        lane.committed = indexed;
        lane.readFrom = indexed;
        lane.resync = false;
      }
    }
  }

  /** Round robin over tenants with work: one batch per tenant per turn. */
  pickLane(now: number, take = true): Lane | null {
    const n = this.order.length;
    for (let i = 0; i < n; i++) {
      const idx = (this.cursor + i) % n;
      const lane = this.lanes.get(this.order[idx]!)!;
      if (lane.readFrom < lane.head && !lane.resync && lane.retryAt <= now && lane.inflight < this.concurrency) {
        if (take) this.cursor = (idx + 1) % n;
        return lane;
      }
    }
    return null;
  }

  async dispatch(lane: Lane): Promise<void> {
    const epoch = lane.epoch;
    const from = lane.readFrom;
    // Up to `concurrency` batches wait for Elasticsearch at a time: keep only
    // what settling needs and the body's bytes, not the rows.
    const refs: DocRef[] = [];
    const body = new BulkBody(this.names, lane.tenantId);
    let upTo = from;
    let readNothing = false;
    // The batch in parts of READ_CHUNK, each after the last sequence taken;
    // each read sees a prefix of the commits, so a hole is judged as in one read.
    reading: while (refs.length < this.batchSize) {
      const want = Math.min(READ_CHUNK, this.batchSize - refs.length);
      const { rows } = await systemQuery<EventRow>(
        this.pool,
        `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3`,
        [lane.tenantId, upTo.toString(), want],
      );
      if (lane.epoch !== epoch) return; // reset while we read
      readNothing = refs.length === 0 && rows.length === 0;
      for (const row of rows) {
        const seq = BigInt(row.sequence);
        if (seq !== upTo + 1n && !(await this.gapWasRemoved(lane, upTo + 1n, seq - 1n))) break reading;
        body.add(row);
        refs.push({ sequence: row.sequence, id: row.id });
        upTo = seq;
      }
      if (rows.length < want) break;
    }
    if (readNothing && upTo < lane.head && (await this.gapWasRemoved(lane, upTo + 1n, lane.head))) upTo = lane.head;
    if (upTo === from) {
      // Nothing contiguous to index although the head is ahead: a hole that
      // is not explained (logged by gapWasRemoved). Look again later.
      lane.retryAt = Date.now() + this.holeRetryMs;
      return;
    }
    const bytes = refs.length > 0 ? body.bytes() : null;
    lane.readFrom = upTo;
    lane.inflight++;
    const size = bytes?.length ?? 0;
    this.inflightBytes += size;
    const bulk = bytes ? this.bulk(lane.tenantId, bytes, refs.length, refs[0]!.sequence) : Promise.resolve<BulkOutcome>({ kind: "ok" });
    const prev = lane.tail;
    const done = (async () => {
      const outcome = await bulk;
      await prev;
      try {
        await this.settle(lane, epoch, refs, upTo, outcome);
      } catch (err) {
        // PostgreSQL failed while recording progress.
        this.hooks.failed(err);
      }
    })();
    lane.tail = done;
    this.inflight.add(done);
    void done.finally(() => {
      lane.inflight--;
      this.inflightBytes -= size;
      this.inflight.delete(done);
    });
  }

  /** Runs in sequence order per tenant: records progress for a finished bulk. */
  private async settle(lane: Lane, epoch: number, docs: DocRef[], upTo: bigint, outcome: BulkOutcome): Promise<void> {
    if (lane.epoch !== epoch) return; // an earlier batch failed: this one is re-read later
    if (outcome.kind === "error") {
      this.hooks.failed(outcome.err);
      return;
    }
    // Progress may pass the document-caused refusals before the first
    // cluster-caused one (which is retried, with everything after it).
    const failed = outcome.kind === "items" ? outcome.failed : [];
    const blocking = failed.find((f) => classifyItemFailure(f) === "cluster");
    const commitTo = blocking ? BigInt(docs[blocking.index]!.sequence) - 1n : upTo;
    const refusals: (Refusal & { failure: ItemFailure })[] = failed
      .filter((f) => !blocking || f.index < blocking.index)
      .map((f) => ({ sequence: BigInt(docs[f.index]!.sequence), eventId: docs[f.index]!.id, reason: refusalReason(f), failure: f }));
    if (commitTo > lane.committed) {
      if (!(await advanceProgress(this.pool, lane.tenantId, lane.committed, commitTo, refusals))) {
        this.log.warn("search indexer: index progress was changed by someone else; re-reading it", { tenant: lane.tenantId });
        this.resetLane(lane, true);
        return;
      }
      lane.committed = commitTo;
      lane.commits++;
      this.hooks.moved();
      for (const r of refusals) {
        this.log.warn("search indexer: Elasticsearch refused an event for its content; recorded in index_failures and skipped", {
          tenant: lane.tenantId,
          sequence: r.sequence,
          eventId: r.eventId,
          status: r.failure.status,
          errorType: r.failure.type,
          reason: r.failure.reason,
        });
      }
      this.stats.eventsRefused += refusals.length;
    }
    this.stats.eventsIndexed += docs.length - failed.length;
    if (blocking) {
      this.clusterItemFailure(lane, docs, blocking, failed.length);
      return;
    }
    this.hooks.healthy();
    if (lane.stuck) this.log.info("search indexer: tenant indexes again", { tenant: lane.tenantId, sequence: lane.stuck.sequence });
    lane.failures = 0;
    lane.stuck = null;
  }

  private async bulk(tenantId: string, body: Buffer, count: number, firstSequence: string): Promise<BulkOutcome> {
    try {
      this.stats.bulkRequests++;
      const t0 = performance.now();
      // Our own retry loop backs off; the client's immediate retries would
      // only add load to a struggling cluster.
      // Background work: a trace of its own per bulk request.
      const res = await withSpan(
        "index",
        () =>
          this.client.bulk(
            // Only what we check: one small item per document, in order.
            // The body is already NDJSON bytes (bulkBody), which the client sends as they are.
            {
              operations: body as unknown as estypes.BulkRequest["operations"],
              refresh: "wait_for",
              filter_path: ["took", "errors", "items.*.status", "items.*.error"],
            },
            { maxRetries: 0, requestTimeout: BULK_TIMEOUT_MS },
          ),
        { root: true, attributes: { "auditlog.events": count } },
      );
      this.log.debug("bulk done", {
        tenant: tenantId,
        events: count,
        ms: Math.round(performance.now() - t0),
        tookMs: res.took,
        from: firstSequence,
      });
      if (!res.errors) return { kind: "ok" };
      const failed: (ItemFailure & { index: number })[] = [];
      res.items.forEach((item, index) => {
        const r = item.index;
        if (!r || r.error || r.status < 200 || r.status > 299) {
          failed.push({
            index,
            status: r?.status ?? 0,
            type: r?.error?.type ?? "unknown",
            reason: r?.error?.reason ?? JSON.stringify(item),
          });
        }
      });
      if (res.items.length !== count) {
        return { kind: "error", err: new Error(`bulk answered ${res.items.length} items for ${count} documents`) };
      }
      if (failed.length === 0) return { kind: "ok" };
      return { kind: "items", failed };
    } catch (err) {
      return { kind: "error", err };
    }
  }

  /**
   * A hole in the sequences read: events from..to are not in `events`. Since
   * a single read sees a prefix of the commits, they were committed and then
   * removed (retention drops whole partitions) if their idempotency keys,
   * which are never removed, are there. Anything else is not skipped.
   */
  private async gapWasRemoved(lane: Lane, from: bigint, to: bigint): Promise<boolean> {
    const { rows } = await systemQuery<{ n: string }>(
      this.pool,
      "SELECT count(*) AS n FROM event_ids WHERE tenant_id = $1 AND sequence BETWEEN $2 AND $3",
      [lane.tenantId, from.toString(), to.toString()],
    );
    const removed = BigInt(rows[0]!.n) === to - from + 1n;
    if (removed) {
      this.log.info("search indexer: events removed by retention are skipped", { tenant: lane.tenantId, from, to });
    } else {
      this.log.error("search indexer: events missing from the events table; progress held before them", {
        tenant: lane.tenantId,
        from,
        to,
      });
    }
    return removed;
  }

  /** The cluster refused a document (not for its content): the lane retries from it, with backoff. */
  private clusterItemFailure(lane: Lane, docs: DocRef[], first: ItemFailure & { index: number }, failedInBatch: number): void {
    const row = docs[first.index]!;
    lane.failures++;
    const delay = this.hooks.backoff(lane.failures);
    lane.retryAt = Date.now() + delay;
    const error = `${first.type}: ${first.reason}`;
    this.hooks.problem(`Elasticsearch refuses writes (HTTP ${first.status} ${error})`);
    const fields = {
      tenant: lane.tenantId,
      sequence: row.sequence,
      eventId: row.id,
      status: first.status,
      errorType: first.type,
      reason: first.reason,
      failedInBatch,
      attempt: lane.failures,
      retryInMs: delay,
      indexedSequence: lane.committed,
    };
    if (lane.failures >= this.maxDocumentFailures) {
      lane.stuck = { tenantId: lane.tenantId, sequence: BigInt(row.sequence), eventId: row.id, failures: lane.failures, error };
      this.log.error(
        "search indexer: Elasticsearch keeps refusing writes for this tenant; its index progress is held until the cluster takes them",
        fields,
      );
    } else {
      this.log.warn("search indexer: Elasticsearch refused writes; retrying the batch", fields);
    }
    this.resetLane(lane, false);
  }

  /** Discards the lane's dispatched work: it is read again from the recorded progress. */
  private resetLane(lane: Lane, resync: boolean): void {
    lane.epoch++;
    lane.readFrom = lane.committed;
    if (resync) lane.resync = true;
  }

  async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}
