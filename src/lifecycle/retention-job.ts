// The retention job (docs/ARCHITECTURE.md, "Data lifecycle"). One round, on
// one replica at a time (advisory lock), for every tenant with a policy:
//
// 1. Search window: records searchable_from (so the reconciler stops
//    comparing before it), then deletes the tenant's documents received
//    before it from Elasticsearch, a page at a time.
// 2. Keep period, in batches of at most `batchSize` events, lowest sequences
//    first, only as long as they are all expired:
//      a. write the archive object and its manifest, read the object back
//         and check its SHA-256 and chain; record it as 'archived';
//      b. delete the range from PostgreSQL in transactions of `deleteChunk`
//         rows, each moving the chain anchor; then from Elasticsearch;
//      c. mark the archive 'deleted'.
//    Every step can be repeated: a round killed after (a) finds the
//    'archived' row and resumes at (b); one killed during (a) writes the
//    same object key again; (b) continues from the anchor.
// 3. Whole months: monthly partitions before every tenant's keep cutoff that
//    retention emptied are dropped; monthly indices before every tenant's
//    searchable cutoff are deleted whole (only when every tenant has a policy).
//
// Nothing here locks chain_heads: ingest goes on during a round.
import type { Pool } from "pg";
import type { ArchiveStore } from "../archive/object-store.ts";
import { archiveManifestJson, archiveObjectKey, cutoff, expiredPrefixLength, type RetentionPolicy } from "../domain/retention.ts";
import type { SigningKey } from "../domain/signing.ts";
import { formatMicros } from "../domain/timestamp.ts";
import type { Logger } from "../platform/log.ts";
import { Periodic } from "../platform/periodic.ts";
import type { SearchLifecycle } from "../search/lifecycle.ts";
import type { RetentionStore } from "../store/retention-store.ts";
import { archiveProblem, encodeArchive } from "./archive-object.ts";
import { LIFECYCLE_LOCK_KEY, withLifecycleLock } from "./lifecycle-lock.ts";

/** Advisory lock key of the retention job: one round (or erasure, or restore) at a time across replicas. */
export const RETENTION_LOCK_KEY = LIFECYCLE_LOCK_KEY;

/** The points between steps where a test can make the round fail (as a kill would). */
export type RetentionStep = "archived" | "recorded" | "chunk-deleted" | "postgres-deleted" | "search-deleted";

export type RetentionJobOptions = {
  pool: Pool;
  store: RetentionStore;
  archive: ArchiveStore | null;
  search: SearchLifecycle | null;
  log: Logger;
  signingKey?: SigningKey;
  /** Events per archive object. Default 10,000. */
  batchSize?: number;
  /** Rows per deleting transaction. Default 1,000. */
  deleteChunk?: number;
  /** At most this many archive objects per tenant per round (bounds a round). Default 100. */
  maxBatchesPerRound?: number;
  lockKey?: bigint;
  now?: () => Date;
  /** Called after each step; a throw ends the round there (tests of a kill halfway). */
  onStep?: (step: RetentionStep, tenantId: string) => void | Promise<void>;
};

export type RetentionRound = {
  tenants: number;
  documentsRemoved: number;
  archivesWritten: number;
  eventsArchived: number;
  eventsDeleted: number;
  partitionsDropped: string[];
  indicesDropped: string[];
};

export class RetentionJob {
  private readonly o: Required<Pick<RetentionJobOptions, "batchSize" | "deleteChunk" | "maxBatchesPerRound" | "lockKey" | "now">> &
    RetentionJobOptions;
  private readonly log: Logger;
  private periodic: Periodic | null = null;
  private stopped = false;

  constructor(opts: RetentionJobOptions) {
    this.o = {
      batchSize: 10_000,
      deleteChunk: 1_000,
      maxBatchesPerRound: 100,
      lockKey: RETENTION_LOCK_KEY,
      now: () => new Date(),
      ...opts,
    };
    this.log = opts.log.child({ component: "retention" });
  }

  /** One round over every tenant with a policy; null when another replica holds the lock. */
  runOnce(): Promise<RetentionRound | null> {
    return withLifecycleLock(this.o.pool, this.o.lockKey, false, () => this.round_());
  }

  runPeriodically(intervalMs: number): void {
    this.periodic ??= new Periodic(
      () => this.runOnce(),
      (err) => this.log.warn("retention round failed", { err: (err as Error).message }),
    );
    this.periodic.start(intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.periodic?.stop();
  }

  private async round_(): Promise<RetentionRound> {
    const now = this.o.now();
    const policies = await this.o.store.policies();
    const out: RetentionRound = {
      tenants: policies.size,
      documentsRemoved: 0,
      archivesWritten: 0,
      eventsArchived: 0,
      eventsDeleted: 0,
      partitionsDropped: [],
      indicesDropped: [],
    };
    for (const [tenantId, policy] of policies) {
      if (this.stopped) break;
      await this.tenant(tenantId, policy, now, out);
    }
    // Whole months, only when every tenant has a period (a tenant without one keeps everything).
    const all = (await this.o.store.tenantCount()) === policies.size && policies.size > 0;
    const earliest = (days: (p: RetentionPolicy) => number): Date | null => {
      let min: Date | null = null;
      for (const p of policies.values()) {
        const c = cutoff(now, days(p));
        if (c === null) return null;
        if (min === null || c < min) min = c;
      }
      return min;
    };
    const keepAll = all ? earliest((p) => p.keepDays) : null;
    if (keepAll && this.o.archive) out.partitionsDropped = await this.o.store.dropEmptyPartitions(keepAll);
    const searchAll = all ? earliest((p) => p.searchableDays) : null;
    if (searchAll && this.o.search) out.indicesDropped = await this.o.search.dropIndicesBefore(searchAll);
    // Restored windows (RestoreArchive) whose day has passed.
    if (this.o.search) out.indicesDropped.push(...(await this.o.search.dropExpiredRestores(now)));
    this.log.info("retention round done", { ...out });
    return out;
  }

  private async step(step: RetentionStep, tenantId: string): Promise<void> {
    await this.o.onStep?.(step, tenantId);
  }

  private async tenant(tenantId: string, policy: RetentionPolicy, now: Date, out: RetentionRound): Promise<void> {
    const searchable = cutoff(now, policy.searchableDays);
    if (searchable && this.o.search) {
      await this.o.store.setSearchableFrom(tenantId, searchable);
      out.documentsRemoved += await this.o.search.deleteReceivedBefore(tenantId, searchable);
    }
    const keep = cutoff(now, policy.keepDays);
    // Without an archive nothing leaves PostgreSQL (SetRetentionPolicy refuses such a policy; this covers a bucket unset later).
    if (!keep || !this.o.archive) return;
    // A round killed after archiving: finish those first.
    for (const a of await this.o.store.archives(tenantId, "archived")) {
      out.eventsDeleted += await this.removeArchived(tenantId, a.firstSequence, a.lastSequence);
    }
    for (let i = 0; i < this.o.maxBatchesPerRound && !this.stopped; i++) {
      const anchor = await this.o.store.anchor(tenantId);
      const batch = await this.o.store.oldest(tenantId, anchor?.sequence ?? 0n, this.o.batchSize);
      const n = expiredPrefixLength(batch, keep);
      if (n === 0) return;
      const records = batch.slice(0, n);
      const first = records[0]!;
      const last = records[n - 1]!;
      const key = archiveObjectKey(this.o.archive.prefix, tenantId, first, last.sequence);
      const { body, manifest } = encodeArchive(key, records, this.o.signingKey, now);
      await this.o.archive.put(key, body, "application/gzip");
      await this.o.archive.put(`${key}.manifest.json`, Buffer.from(archiveManifestJson(manifest)), "application/json");
      // Read back: only what is verifiably in the bucket may leave PostgreSQL.
      const stored = await this.o.archive.get(key);
      const problem = stored === null ? "the object is missing after writing it" : archiveProblem(stored, manifest);
      if (problem) throw new Error(`archive ${key} does not check after writing: ${problem}`);
      await this.step("archived", tenantId);
      await this.o.store.recordArchive({
        tenantId,
        firstSequence: first.sequence,
        lastSequence: last.sequence,
        count: manifest.count,
        firstReceived: formatMicros(first.receivedAt),
        lastReceived: formatMicros(last.receivedAt),
        firstPrevHash: first.prevHash,
        lastHash: last.hash,
        objectKey: key,
        sha256: manifest.sha256,
      });
      out.archivesWritten++;
      out.eventsArchived += n;
      await this.step("recorded", tenantId);
      out.eventsDeleted += await this.removeArchived(tenantId, first.sequence, last.sequence);
      if (n < batch.length) return; // the next event is not expired yet
    }
  }

  /** Steps (b) and (c) for one recorded archive. */
  private async removeArchived(tenantId: string, first: bigint, last: bigint): Promise<number> {
    const deleted = await this.o.store.deleteThrough(tenantId, last, this.o.deleteChunk, () => this.step("chunk-deleted", tenantId));
    await this.step("postgres-deleted", tenantId);
    if (this.o.search) await this.o.search.deleteSequences(tenantId, first, last);
    await this.step("search-deleted", tenantId);
    await this.o.store.markDeleted(tenantId, first);
    return deleted;
  }
}
