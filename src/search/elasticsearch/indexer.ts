// The search indexer: follows each tenant's committed events in sequence
// order and writes them into Elasticsearch, recording per tenant the highest
// sequence that is searchable (index_progress). PostgreSQL stays the source
// of truth; the index is derived (DESIGN.md invariant 4):
//
//  * Never skips: committed sequences of a tenant are a gap-free prefix
//    1..head (assigned under the chain_heads row lock, committed in order), so
//    "everything up to indexed_sequence" is a complete statement. Progress
//    only moves over events whose bulk item came back successful and after
//    the bulk's refresh=wait_for (indexed means searchable), or that
//    Elasticsearch refused for their own content (index-failures.ts): those
//    are recorded in index_failures in the same transaction as the progress,
//    because waiting for them would freeze the tenant's search forever.
//    Cluster-side refusals (overload, shard limit, blocks) are retried and
//    never skipped.
//  * Never duplicates: document id = tenant/event id and the bulk action is
//    `index` (overwrite), so re-delivery after a crash between the bulk and
//    the progress update rewrites the same documents.
//  * Never blocks ingest: it only reads events and writes index_progress;
//    an Elasticsearch outage means growing lag, retried with backoff.
//  * One writer: a session-level advisory lock on a dedicated connection
//    elects one indexer across replicas; the others retry every few seconds.
//    Progress updates are compare-and-set, so even two indexers at once (a
//    lock lost mid-batch) cannot move progress over an unindexed event.
//
// Throughput: bulk requests are pipelined (up to `concurrency` in flight,
// also within one tenant), because refresh=wait_for holds each request until
// the next scheduled refresh; progress commits stay in sequence order per
// tenant. Tenants are served round-robin, one batch per turn.
import type { Client } from "@elastic/elasticsearch";
import pg from "pg";
import type { Pool } from "pg";
import { COMMIT_CHANNEL } from "../../platform/commit-channel.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../store/event-rows.ts";
import { systemQuery } from "../../store/system-scope.ts";
import type { Logger } from "../../platform/log.ts";
import type { IndexStatus } from "../backend.ts";
import { documentFromRecord, documentId } from "./event-document.ts";
import { indexNames, type IndexNames, type IndexTemplateBody } from "./index-names.ts";
import { ensureIndexTemplate } from "./index-setup.ts";
import { indexTemplate } from "./index-template.ts";
import { classifyItemFailure, type ItemFailure, type Refusal, recordRefusals, refusalReason } from "./index-failures.ts";

/** Advisory lock key of the indexer (one per database): "auditlog search indexer". */
export const INDEXER_LOCK_KEY = 7_428_113_002n;

/** A bulk request (with its refresh wait) taking longer counts as failed and is retried. */
const BULK_TIMEOUT_MS = 60_000;

/** Commit notifications trigger a scan at most this often. */
const MIN_SCAN_GAP_MS = 20;

export type RetryOptions = { initialMs?: number; maxMs?: number };

export type IndexerOptions = {
  pool: Pool;
  client: Client;
  log: Logger;
  /** Events per bulk request. Default 2000. */
  batchSize?: number;
  /** Look for work at least this often even without a commit notification. Default 500 ms. */
  pollMs?: number;
  /** Backoff after failures: exponential from initialMs to maxMs, with jitter. Default 200 ms .. 10 s. */
  retry?: RetryOptions;
  /** Index name prefix (index-names.ts). Default "auditlog-events". */
  prefix?: string;
  /** Template put when the indexer takes over and after Elasticsearch recovers; null: leave templates alone. */
  template?: IndexTemplateBody | null;
  /** Bulk requests in flight at once (also within one tenant: pipelined). Default 6. */
  concurrency?: number;
  /** How often a standby tries to take the lock. Default 5000 ms. */
  lockRetryMs?: number;
  /** Advisory lock key. Default INDEXER_LOCK_KEY. */
  lockKey?: bigint;
  /** Lag is logged at info this often while leading. Default 10 000 ms. */
  lagLogMs?: number;
  /** After this many failed attempts of a batch that the cluster keeps refusing, its tenant is reported as stuck. Default 5. */
  maxDocumentFailures?: number;
  /**
   * Runs each time the lock is acquired, before any indexing (while holding
   * the lock, so no other indexer runs). scripts/reindex.ts uses it to drop
   * the indices and reset progress. A failure is retried with backoff.
   */
  onLeader?: () => Promise<void>;
};

/** A tenant whose next event the cluster keeps refusing (not for its content): progress holds before it. */
export type StuckTenant = {
  tenantId: string;
  sequence: bigint;
  eventId: string;
  failures: number;
  error: string;
};

export type IndexerStats = {
  leader: boolean;
  /** Events written to Elasticsearch by this instance since start (re-deliveries included). */
  eventsIndexed: number;
  bulkRequests: number;
  /** Events Elasticsearch refused for their content, recorded and skipped, since start. */
  eventsRefused: number;
};

/** Why indexing is not moving, as this instance saw it (health.ts reports it). */
export type IndexingProblem = { error: string; since: Date };

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

type BulkOutcome =
  | { kind: "ok" }
  | { kind: "error"; err: unknown }
  | { kind: "items"; failed: (ItemFailure & { index: number })[] };

type Waiter = { resolve: () => void; onNotify: boolean };

/** What settling a bulk request needs of each event in it. */
type DocRef = { sequence: string; id: string };

/**
 * The bulk request body for `rows`, already serialized (action line, then
 * document, per event): the client passes strings through as they are.
 */
function bulkLines(names: IndexNames, tenantId: string, rows: EventRow[]): string[] {
  const lines = new Array<string>(rows.length * 2);
  rows.forEach((row, i) => {
    const doc = documentFromRecord(recordFromRow(row));
    lines[2 * i] = JSON.stringify({ index: { _index: names.indexFor(doc.received_at), _id: documentId(tenantId, doc.id), routing: tenantId } });
    lines[2 * i + 1] = JSON.stringify(doc);
  });
  return lines;
}

export class Indexer {
  private readonly pool: Pool;
  private readonly client: Client;
  private readonly log: Logger;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly names: IndexNames;
  private readonly template: IndexTemplateBody | null;
  private readonly concurrency: number;
  private readonly lockRetryMs: number;
  private readonly lockKey: bigint;
  private readonly lagLogMs: number;
  private readonly maxDocumentFailures: number;
  private readonly onLeader: (() => Promise<void>) | undefined;

  private running: Promise<void> | null = null;
  private stopping = false;
  private leader = false;
  private lockClient: pg.Client | null = null;
  private lagTimer: NodeJS.Timeout | null = null;

  private lanes = new Map<string, Lane>();
  private order: string[] = [];
  private cursor = 0;
  private inflight = new Set<Promise<void>>();
  private templateReady = false;
  private globalFailures = 0;
  private backoffUntil = 0;
  private notified = false;
  private waiter: Waiter | null = null;
  private stats: IndexerStats = { leader: false, eventsIndexed: 0, bulkRequests: 0, eventsRefused: 0 };
  /** The first failure since indexing last moved; null while it moves. */
  private problem: IndexingProblem | null = null;

  constructor(opts: IndexerOptions) {
    this.pool = opts.pool;
    this.client = opts.client;
    this.log = opts.log.child({ component: "search-indexer" });
    this.batchSize = opts.batchSize ?? 2000;
    this.pollMs = opts.pollMs ?? 500;
    this.initialMs = opts.retry?.initialMs ?? 200;
    this.maxMs = opts.retry?.maxMs ?? 10_000;
    this.names = indexNames(opts.prefix);
    this.template = opts.template === undefined ? indexTemplate : opts.template;
    this.concurrency = Math.max(1, opts.concurrency ?? 6);
    this.lockRetryMs = opts.lockRetryMs ?? 5000;
    this.lockKey = opts.lockKey ?? INDEXER_LOCK_KEY;
    this.lagLogMs = opts.lagLogMs ?? 10_000;
    this.maxDocumentFailures = opts.maxDocumentFailures ?? 5;
    this.onLeader = opts.onLeader;
    if (!(this.batchSize >= 1)) throw new Error("Indexer: batchSize must be at least 1");
  }

  /** Starts following commits in the background. Idempotent. */
  start(): void {
    if (this.running) return;
    this.stopping = false;
    this.running = this.run().catch((err: unknown) => {
      this.log.error("search indexer stopped by an unexpected error", { err });
    });
    this.lagTimer = setInterval(() => {
      if (this.leader) this.logLag("info", "search index lag").catch(() => {});
    }, this.lagLogMs);
    this.lagTimer.unref();
  }

  /** Finishes the batches in flight (their progress is recorded), releases the lock, and stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.lagTimer) clearInterval(this.lagTimer);
    this.lagTimer = null;
    this.wake(true);
    await this.running;
    this.running = null;
  }

  /** True while this instance holds the indexer lock. */
  isLeader(): boolean {
    return this.leader;
  }

  getStats(): IndexerStats {
    return { ...this.stats, leader: this.leader };
  }

  /**
   * The failure that has kept indexing from moving since it last moved (the
   * latest error, dated from the first), or null. Only meaningful on the
   * leader; index-health.ts decides whether it has lasted too long.
   */
  currentProblem(): IndexingProblem | null {
    return this.problem ? { ...this.problem } : null;
  }

  /** Tenants whose next event the cluster keeps refusing (progress is held before that event). */
  stuckTenants(): StuckTenant[] {
    return [...this.lanes.values()].flatMap((l) => (l.stuck ? [{ ...l.stuck }] : []));
  }

  statusFor(tenantId: string): Promise<IndexStatus> {
    return readIndexStatus(this.pool, tenantId);
  }

  // -------------------------------------------------------------------------
  // Leadership

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        const client = await this.ensureLockClient();
        const r = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [this.lockKey.toString()]);
        if (!r.rows[0]?.ok) {
          this.log.debug("search indexer: another instance holds the lock; standing by");
          await this.sleep(this.lockRetryMs, false);
          continue;
        }
        await client.query(`LISTEN ${COMMIT_CHANNEL}`);
        this.leader = true;
        failures = 0;
        this.log.info("search indexer: took the indexer lock", { prefix: this.names.prefix });
        await this.lead();
      } catch (err) {
        failures++;
        const delay = this.backoff(failures);
        this.log.warn("search indexer: lock connection failed; retrying", { err: errorText(err), retryInMs: delay });
        this.dropLockClient();
        await this.sleep(delay, false);
      } finally {
        this.leader = false;
      }
    }
    await this.drain();
    const client = this.lockClient;
    if (client) {
      await client.query("SELECT pg_advisory_unlock_all()").catch(() => {});
      this.dropLockClient();
    }
  }

  private async ensureLockClient(): Promise<pg.Client> {
    if (this.lockClient) return this.lockClient;
    // Not from the pool: held for as long as we lead, it must not take a
    // slot from ingest.
    const client = new pg.Client({ ...this.pool.options, keepAlive: true });
    const lost = (why: string) => (err?: Error) => {
      if (this.lockClient !== client) return;
      this.log.warn(`search indexer: lock connection ${why}; leadership lost`, { err: err?.message });
      this.lockClient = null;
      this.leader = false;
      client.end().catch(() => {});
      this.wake(true);
    };
    client.on("error", lost("failed"));
    client.on("end", lost("closed"));
    client.on("notification", () => this.wake(false));
    this.lockClient = client;
    try {
      await client.connect();
    } catch (err) {
      this.lockClient = null;
      client.end().catch(() => {});
      throw err;
    }
    return client;
  }

  private dropLockClient(): void {
    const client = this.lockClient;
    this.lockClient = null;
    client?.removeAllListeners("end");
    client?.end().catch(() => {});
  }

  // -------------------------------------------------------------------------
  // The work loop (while leading)

  private async lead(): Promise<void> {
    this.lanes.clear();
    this.order = [];
    this.cursor = 0;
    this.templateReady = this.template === null;
    this.globalFailures = 0;
    this.backoffUntil = 0;
    let leaderHookDone = this.onLeader === undefined;
    let nextScan = 0;
    let lastScan = 0;
    while (!this.stopping && this.leader) {
      try {
        const now = Date.now();
        if (this.backoffUntil > now) {
          await this.drain();
          await this.sleep(this.backoffUntil - Date.now(), false);
          nextScan = 0;
          continue;
        }
        if (!leaderHookDone) {
          await this.onLeader!();
          leaderHookDone = true;
        }
        // Heads are re-read every pollMs, and sooner after a commit
        // notification when there is a free slot and nothing queued (at most
        // every MIN_SCAN_GAP_MS: notifications come with every commit).
        const wanted = this.notified && this.inflight.size < this.concurrency && this.pickLane(now, false) === null;
        if (now >= nextScan || (wanted && now >= lastScan + MIN_SCAN_GAP_MS)) {
          this.notified = false;
          await this.scan();
          lastScan = Date.now();
          nextScan = lastScan + this.pollMs;
        }
        if (!this.templateReady) {
          await ensureIndexTemplate(this.client, this.template!, { prefix: this.names.prefix, transport: { maxRetries: 0, requestTimeout: 30_000 } });
          this.templateReady = true;
        }
        if (this.inflight.size < this.concurrency) {
          const lane = this.pickLane(Date.now());
          if (lane) {
            await this.dispatch(lane);
            continue;
          }
        }
        // Wait for a batch to finish, the next scan, a lane's retry time, or
        // (with a free slot) a commit notification.
        const t = Date.now();
        let wait = nextScan - t;
        for (const l of this.lanes.values()) if (l.head > l.committed && l.retryAt > t) wait = Math.min(wait, l.retryAt - t);
        let onNotify = this.inflight.size < this.concurrency;
        if (onNotify && this.notified) {
          wait = Math.min(wait, lastScan + MIN_SCAN_GAP_MS - t);
          onNotify = false;
        }
        const sleep = this.sleep(Math.max(1, wait), onNotify);
        await (this.inflight.size > 0 ? Promise.race([...this.inflight, sleep]) : sleep);
      } catch (err) {
        this.globalFailure(err);
      }
    }
    await this.drain();
  }

  /** Tenants behind: update heads; take progress from the database for idle lanes. */
  private async scan(): Promise<void> {
    const commitsBefore = new Map([...this.lanes].map(([t, l]) => [t, l.commits]));
    const { rows } = await systemQuery<{ tenant_id: string; head: string; indexed: string }>(this.pool,
      `SELECT h.tenant_id, h.sequence AS head, coalesce(p.indexed_sequence, 0) AS indexed
         FROM chain_heads h LEFT JOIN index_progress p USING (tenant_id)
        ORDER BY h.tenant_id`,
    );
    for (const r of rows) {
      const head = BigInt(r.head);
      const indexed = BigInt(r.indexed);
      let lane = this.lanes.get(r.tenant_id);
      if (!lane) {
        if (head <= indexed) continue;
        lane = {
          tenantId: r.tenant_id, head, committed: indexed, readFrom: indexed, epoch: 0, inflight: 0,
          tail: Promise.resolve(), retryAt: 0, resync: false, commits: 0, stuck: null, failures: 0,
        };
        commitsBefore.set(r.tenant_id, 0);
        this.lanes.set(r.tenant_id, lane);
        this.order.push(r.tenant_id);
      }
      lane.head = head;
      const fresh = commitsBefore.get(r.tenant_id) === lane.commits; // no progress write of ours raced the read
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
  private pickLane(now: number, take = true): Lane | null {
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

  private async dispatch(lane: Lane): Promise<void> {
    const epoch = lane.epoch;
    const from = lane.readFrom;
    const { rows } = await systemQuery<EventRow>(this.pool,
      `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3`,
      [lane.tenantId, from.toString(), this.batchSize],
    );
    if (lane.epoch !== epoch) return; // reset while we read
    const docs: EventRow[] = [];
    let upTo = from;
    for (const row of rows) {
      const seq = BigInt(row.sequence);
      if (seq !== upTo + 1n && !(await this.gapWasRemoved(lane, upTo + 1n, seq - 1n))) break;
      docs.push(row);
      upTo = seq;
    }
    if (rows.length === 0 && upTo < lane.head && (await this.gapWasRemoved(lane, upTo + 1n, lane.head))) upTo = lane.head;
    if (upTo === from) {
      // Nothing contiguous to index although the head is ahead: a hole that
      // is not explained (logged by gapWasRemoved). Look again later.
      lane.retryAt = Date.now() + this.maxMs;
      return;
    }
    lane.readFrom = upTo;
    lane.inflight++;
    const bulk = docs.length > 0 ? this.bulk(lane.tenantId, bulkLines(this.names, lane.tenantId, docs), docs[0]!.sequence) : Promise.resolve<BulkOutcome>({ kind: "ok" });
    // Up to `concurrency` batches wait for Elasticsearch at a time: keep only
    // what settling needs, not the rows (most of the indexer's memory).
    const refs: DocRef[] = docs.map((r) => ({ sequence: r.sequence, id: r.id }));
    const prev = lane.tail;
    const done = (async () => {
      const outcome = await bulk;
      await prev;
      try {
        await this.settle(lane, epoch, refs, upTo, outcome);
      } catch (err) {
        // PostgreSQL failed while recording progress.
        this.globalFailure(err);
      }
    })();
    lane.tail = done;
    this.inflight.add(done);
    void done.finally(() => {
      lane.inflight--;
      this.inflight.delete(done);
    });
  }

  /** Runs in sequence order per tenant: records progress for a finished bulk. */
  private async settle(lane: Lane, epoch: number, docs: DocRef[], upTo: bigint, outcome: BulkOutcome): Promise<void> {
    if (lane.epoch !== epoch) return; // an earlier batch failed: this one is re-read later
    if (outcome.kind === "error") {
      this.globalFailure(outcome.err);
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
      if (!(await this.commitProgress(lane, commitTo, refusals))) {
        this.log.warn("search indexer: index progress was changed by someone else; re-reading it", { tenant: lane.tenantId });
        this.resetLane(lane, true);
        return;
      }
      lane.committed = commitTo;
      lane.commits++;
      this.problem = null;
      for (const r of refusals) {
        this.log.warn("search indexer: Elasticsearch refused an event for its content; recorded in index_failures and skipped", {
          tenant: lane.tenantId, sequence: r.sequence, eventId: r.eventId, status: r.failure.status, errorType: r.failure.type, reason: r.failure.reason,
        });
      }
      this.stats.eventsRefused += refusals.length;
    }
    this.stats.eventsIndexed += docs.length - failed.length;
    if (blocking) {
      this.clusterItemFailure(lane, docs, blocking, failed.length);
      return;
    }
    this.globalFailures = 0;
    if (lane.stuck) this.log.info("search indexer: tenant indexes again", { tenant: lane.tenantId, sequence: lane.stuck.sequence });
    lane.failures = 0;
    lane.stuck = null;
  }

  /** Compare-and-set of the lane's progress, with its refusals in the same transaction. False when someone else moved it. */
  private async commitProgress(lane: Lane, commitTo: bigint, refusals: Refusal[]): Promise<boolean> {
    const cas = (db: Pick<pg.Pool, "query">) =>
      db.query(
        `INSERT INTO index_progress AS p (tenant_id, indexed_sequence, updated_at) VALUES ($1, $3, now())
         ON CONFLICT (tenant_id) DO UPDATE SET indexed_sequence = EXCLUDED.indexed_sequence, updated_at = now()
         WHERE p.indexed_sequence = $2`,
        [lane.tenantId, lane.committed.toString(), commitTo.toString()],
      );
    if (refusals.length === 0) return (await cas(this.pool)).rowCount === 1;
    const db = await this.pool.connect();
    try {
      await db.query("BEGIN");
      const moved = (await cas(db)).rowCount === 1;
      if (moved) await recordRefusals(db, lane.tenantId, refusals);
      await db.query(moved ? "COMMIT" : "ROLLBACK");
      return moved;
    } catch (err) {
      await db.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      db.release();
    }
  }

  private async bulk(tenantId: string, operations: string[], firstSequence: string): Promise<BulkOutcome> {
    const count = operations.length / 2;
    try {
      this.stats.bulkRequests++;
      const t0 = performance.now();
      // Our own retry loop backs off; the client's immediate retries would
      // only add load to a struggling cluster.
      const res = await this.client.bulk(
        // Only what we check: one small item per document, in order.
        { operations, refresh: "wait_for", filter_path: ["took", "errors", "items.*.status", "items.*.error"] },
        { maxRetries: 0, requestTimeout: BULK_TIMEOUT_MS },
      );
      this.log.debug("bulk done", { tenant: tenantId, events: count, ms: Math.round(performance.now() - t0), tookMs: res.took, from: firstSequence });
      if (!res.errors) return { kind: "ok" };
      const failed: (ItemFailure & { index: number })[] = [];
      res.items.forEach((item, index) => {
        const r = item.index;
        if (!r || r.error || r.status < 200 || r.status > 299) {
          failed.push({ index, status: r?.status ?? 0, type: r?.error?.type ?? "unknown", reason: r?.error?.reason ?? JSON.stringify(item) });
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
    const { rows } = await systemQuery<{ n: string }>(this.pool,
      "SELECT count(*) AS n FROM event_ids WHERE tenant_id = $1 AND sequence BETWEEN $2 AND $3",
      [lane.tenantId, from.toString(), to.toString()],
    );
    const removed = BigInt(rows[0]!.n) === to - from + 1n;
    if (removed) {
      this.log.info("search indexer: events removed by retention are skipped", { tenant: lane.tenantId, from, to });
    } else {
      this.log.error("search indexer: events missing from the events table; progress held before them", { tenant: lane.tenantId, from, to });
    }
    return removed;
  }

  /** The cluster refused a document (not for its content): the lane retries from it, with backoff. */
  private clusterItemFailure(lane: Lane, docs: DocRef[], first: ItemFailure & { index: number }, failedInBatch: number): void {
    const row = docs[first.index]!;
    lane.failures++;
    const delay = this.backoff(lane.failures);
    lane.retryAt = Date.now() + delay;
    const error = `${first.type}: ${first.reason}`;
    this.noteProblem(`Elasticsearch refuses writes (HTTP ${first.status} ${error})`);
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
      this.log.error("search indexer: Elasticsearch keeps refusing writes for this tenant; its index progress is held until the cluster takes them", fields);
    } else {
      this.log.warn("search indexer: Elasticsearch refused writes; retrying the batch", fields);
    }
    this.resetLane(lane, false);
  }

  private noteProblem(error: string): void {
    this.problem = { error, since: this.problem?.since ?? new Date() };
  }

  /** Elasticsearch or PostgreSQL unavailable: back off everything. */
  private globalFailure(err: unknown): void {
    const now = Date.now();
    for (const lane of this.lanes.values()) this.resetLane(lane, false);
    this.templateReady = this.template === null;
    this.noteProblem(errorText(err));
    if (this.backoffUntil > now) return; // same incident, already counted
    this.globalFailures++;
    const delay = this.backoff(this.globalFailures);
    this.backoffUntil = now + delay;
    this.logLag("warn", "search indexer: indexing failed; retrying", { err: errorText(err), attempt: this.globalFailures, retryInMs: delay }).catch(
      () => this.log.warn("search indexer: indexing failed; retrying", { err: errorText(err), attempt: this.globalFailures, retryInMs: delay }),
    );
  }

  /** Discards the lane's dispatched work: it is read again from the recorded progress. */
  private resetLane(lane: Lane, resync: boolean): void {
    lane.epoch++;
    lane.readFrom = lane.committed;
    if (resync) lane.resync = true;
  }

  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private backoff(attempt: number): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(30, attempt - 1));
    return Math.round(base / 2 + (Math.random() * base) / 2);
  }

  /** Waits `ms`, or less when stopping or lost the lock (or, with onNotify, on a commit notification). */
  private sleep(ms: number, onNotify: boolean): Promise<void> {
    if (this.stopping || (onNotify && this.notified)) return Promise.resolve();
    return new Promise((resolve) => {
      const w: Waiter = {
        onNotify,
        resolve: () => {
          clearTimeout(timer);
          if (this.waiter === w) this.waiter = null;
          resolve();
        },
      };
      const timer = setTimeout(w.resolve, Math.max(0, ms));
      this.waiter?.resolve(); // one waiter at a time: the loop
      this.waiter = w;
    });
  }

  private wake(always: boolean): void {
    if (!always) this.notified = true;
    const w = this.waiter;
    if (w && (always || w.onNotify)) w.resolve();
  }

  private async logLag(level: "info" | "warn", msg: string, extra: Record<string, unknown> = {}): Promise<void> {
    const { rows } = await systemQuery<{ tenants: string; events: string; seconds: number | null }>(this.pool, LAG_SQL);
    const r = rows[0]!;
    this.log[level](msg, {
      tenantsBehind: Number(r.tenants),
      lagEvents: Number(r.events),
      maxLagSeconds: Math.max(0, Math.round((r.seconds ?? 0) * 10) / 10),
      ...extra,
    });
  }
}

const LAG_SQL = `
  SELECT count(*) AS tenants,
         coalesce(sum(h.sequence - coalesce(p.indexed_sequence, 0)), 0) AS events,
         max(extract(epoch FROM now() - f.received_at))::float8 AS seconds
    FROM chain_heads h
    LEFT JOIN index_progress p USING (tenant_id)
    LEFT JOIN LATERAL (
      SELECT e.received_at FROM events e
       WHERE e.tenant_id = h.tenant_id AND e.sequence > coalesce(p.indexed_sequence, 0)
       ORDER BY e.sequence LIMIT 1) f ON true
   WHERE h.sequence > coalesce(p.indexed_sequence, 0)`;

/**
 * Index status of one tenant from PostgreSQL alone (any replica can answer,
 * leading or not): committed = chain head, indexed = index_progress, lag in
 * events and in seconds since the first unindexed event was received, and
 * the latest reconcile report.
 */
export async function readIndexStatus(pool: Pool, tenantId: string): Promise<IndexStatus> {
  const { rows } = await systemQuery<{
    committed: string;
    indexed: string;
    lag_seconds: number | null;
    finished_at: Date | null;
    windows_checked: string | null;
    windows_with_gaps: string | null;
    events_repaired: string | null;
    documents_removed: string | null;
  }>(pool,
    `SELECT h.sequence AS committed, coalesce(p.indexed_sequence, 0) AS indexed,
            (SELECT extract(epoch FROM now() - e.received_at)::float8 FROM events e
              WHERE e.tenant_id = h.tenant_id AND e.sequence > coalesce(p.indexed_sequence, 0)
              ORDER BY e.sequence LIMIT 1) AS lag_seconds,
            r.finished_at, r.windows_checked, r.windows_with_gaps, r.events_repaired, r.documents_removed
       FROM chain_heads h
       LEFT JOIN index_progress p USING (tenant_id)
       LEFT JOIN LATERAL (
         SELECT * FROM reconcile_reports r WHERE r.tenant_id = h.tenant_id ORDER BY finished_at DESC, id DESC LIMIT 1) r ON true
      WHERE h.tenant_id = $1`,
    [tenantId],
  );
  const r = rows[0];
  const refused = await readRefusals(pool, tenantId);
  if (!r) {
    return { backend: "elasticsearch", committedPosition: 0n, indexedPosition: 0n, lagEvents: 0n, lagSeconds: 0, lastReconcile: null, ...refused };
  }
  const committed = BigInt(r.committed);
  const indexed = BigInt(r.indexed);
  const lagEvents = committed > indexed ? committed - indexed : 0n;
  return {
    backend: "elasticsearch",
    committedPosition: committed,
    indexedPosition: indexed,
    lagEvents,
    lagSeconds: lagEvents > 0n ? Math.max(0, r.lag_seconds ?? 0) : 0,
    lastReconcile: r.finished_at === null
      ? null
      : {
          finishedAt: r.finished_at,
          windowsChecked: BigInt(r.windows_checked!),
          windowsWithGaps: BigInt(r.windows_with_gaps!),
          eventsRepaired: BigInt(r.events_repaired!),
          documentsRemoved: BigInt(r.documents_removed!),
        },
    ...refused,
  };
}

/** How many GetIndexStatus lists. */
export const RECENT_REFUSALS = 10;

async function readRefusals(pool: Pool, tenantId: string): Promise<Pick<IndexStatus, "refusedDocuments" | "recentRefusals">> {
  const { rows } = await pool.query<{ n: string; sequence: string | null; event_id: string | null; reason: string | null; failed_at: Date | null }>(
    `SELECT c.n, f.sequence, f.event_id, f.reason, f.failed_at
       FROM (SELECT count(*) AS n FROM index_failures WHERE tenant_id = $1) c
       LEFT JOIN LATERAL (
         SELECT sequence, event_id, reason, failed_at FROM index_failures
          WHERE tenant_id = $1 ORDER BY failed_at DESC, sequence DESC LIMIT $2) f ON true`,
    [tenantId, RECENT_REFUSALS],
  );
  return {
    refusedDocuments: BigInt(rows[0]?.n ?? "0"),
    recentRefusals: rows.flatMap((f) =>
      f.sequence === null ? [] : [{ sequence: BigInt(f.sequence), eventId: f.event_id!, reason: f.reason!, refusedAt: f.failed_at! }]),
  };
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const meta = (err as { meta?: { statusCode?: number } }).meta;
    return meta?.statusCode ? `${err.name}: ${err.message} (HTTP ${meta.statusCode})` : `${err.name}: ${err.message}`;
  }
  return String(err);
}
