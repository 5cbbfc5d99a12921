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
//
// This file is the leadership half: the advisory lock, LISTEN on the commit
// channel and wake-ups, global backoff, template installation and the loop
// that decides when to scan and dispatch. The per-tenant work (reading,
// bulk requests, refusals, progress) is tenant-lanes.ts.
import type { Client } from "@elastic/elasticsearch";
import pg from "pg";
import type { Pool } from "pg";
import { COMMIT_CHANNEL } from "../../platform/commit-channel.ts";
import type { Logger } from "../../platform/log.ts";
import { indexLag } from "../../store/index-progress.ts";
import type { IndexStatus } from "../backend.ts";
import { indexNames, type IndexNames, type IndexTemplateBody } from "./index-names.ts";
import { ensureIndexTemplate } from "./index-setup.ts";
import { readIndexStatus } from "./index-status.ts";
import { indexTemplate } from "./index-template.ts";
import { type StuckTenant, TenantLanes } from "./tenant-lanes.ts";

/** Advisory lock key of the indexer (one per database): "auditlog search indexer". */
export const INDEXER_LOCK_KEY = 7_428_113_002n;

/** Commit notifications trigger a scan at most this often. */
const MIN_SCAN_GAP_MS = 20;

/**
 * Bulk bodies in flight at most, in bytes: with events of about 2 KB, the
 * `concurrency` batches of `batchSize` fit; with larger ones, fewer go at once
 * and the indexer's memory stays about this (docs/PERFORMANCE.md, "Round two: memory").
 */
export const DEFAULT_MAX_INFLIGHT_BYTES = 32 * 1024 * 1024;

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
  /**
   * Bytes of bulk request bodies in flight at most: fewer than `concurrency`
   * requests when the events are large (one is always allowed). Default
   * DEFAULT_MAX_INFLIGHT_BYTES.
   */
  maxInflightBytes?: number;
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

export type { StuckTenant } from "./tenant-lanes.ts";

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

type Waiter = { resolve: () => void; onNotify: boolean };

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

  private readonly work: TenantLanes;
  private templateReady = false;
  private globalFailures = 0;
  private backoffUntil = 0;
  private notified = false;
  private waiter: Waiter | null = null;
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
    this.work = new TenantLanes({
      pool: this.pool,
      client: this.client,
      log: this.log,
      names: this.names,
      batchSize: this.batchSize,
      concurrency: this.concurrency,
      maxInflightBytes: opts.maxInflightBytes ?? DEFAULT_MAX_INFLIGHT_BYTES,
      holeRetryMs: this.maxMs,
      maxDocumentFailures: this.maxDocumentFailures,
      hooks: {
        failed: (err) => this.globalFailure(err),
        moved: () => {
          this.problem = null;
        },
        problem: (error) => this.noteProblem(error),
        healthy: () => {
          this.globalFailures = 0;
        },
        backoff: (attempt) => this.backoff(attempt),
      },
    });
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
    return { ...this.work.stats, leader: this.leader };
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
    return this.work.stuckTenants();
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
    await this.work.drain();
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
    this.work.clear();
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
          await this.work.drain();
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
        const wanted = this.notified && this.work.hasRoom() && this.work.pickLane(now, false) === null;
        if (now >= nextScan || (wanted && now >= lastScan + MIN_SCAN_GAP_MS)) {
          this.notified = false;
          await this.work.scan();
          lastScan = Date.now();
          nextScan = lastScan + this.pollMs;
        }
        if (!this.templateReady) {
          await ensureIndexTemplate(this.client, this.template!, {
            prefix: this.names.prefix,
            transport: { maxRetries: 0, requestTimeout: 30_000 },
          });
          this.templateReady = true;
        }
        if (this.work.hasRoom()) {
          const lane = this.work.pickLane(Date.now());
          if (lane) {
            await this.work.dispatch(lane);
            continue;
          }
        }
        // Wait for a batch to finish, the next scan, a lane's retry time, or
        // (with a free slot) a commit notification.
        const t = Date.now();
        let wait = this.work.nextRetryWait(t, nextScan - t);
        let onNotify = this.work.hasRoom();
        if (onNotify && this.notified) {
          wait = Math.min(wait, lastScan + MIN_SCAN_GAP_MS - t);
          onNotify = false;
        }
        const sleep = this.sleep(Math.max(1, wait), onNotify);
        await (this.work.inflight.size > 0 ? Promise.race([...this.work.inflight, sleep]) : sleep);
      } catch (err) {
        this.globalFailure(err);
      }
    }
    await this.work.drain();
  }

  private noteProblem(error: string): void {
    this.problem = { error, since: this.problem?.since ?? new Date() };
  }

  /** Elasticsearch or PostgreSQL unavailable: back off everything. */
  private globalFailure(err: unknown): void {
    const now = Date.now();
    this.work.resetAll();
    this.templateReady = this.template === null;
    this.noteProblem(errorText(err));
    if (this.backoffUntil > now) return; // same incident, already counted
    this.globalFailures++;
    const delay = this.backoff(this.globalFailures);
    this.backoffUntil = now + delay;
    this.logLag("warn", "search indexer: indexing failed; retrying", {
      err: errorText(err),
      attempt: this.globalFailures,
      retryInMs: delay,
    }).catch(() =>
      this.log.warn("search indexer: indexing failed; retrying", { err: errorText(err), attempt: this.globalFailures, retryInMs: delay }),
    );
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
    const r = await indexLag(this.pool);
    this.log[level](msg, {
      tenantsBehind: Number(r.tenants),
      lagEvents: Number(r.events),
      maxLagSeconds: Math.max(0, Math.round((r.seconds ?? 0) * 10) / 10),
      ...extra,
    });
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const meta = (err as { meta?: { statusCode?: number } }).meta;
    return meta?.statusCode ? `${err.name}: ${err.message} (HTTP ${meta.statusCode})` : `${err.name}: ${err.message}`;
  }
  return String(err);
}
