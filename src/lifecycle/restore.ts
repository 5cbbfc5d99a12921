// RestoreArchive: archived events back in search for a while (docs/
// ARCHITECTURE.md, "Data lifecycle"). Each archive object overlapping the
// window is read and checked against what was recorded when it was written
// (SHA-256 and chain) before anything of it is indexed.
import type { Pool } from "pg";
import type { ArchiveStore } from "../archive/object-store.ts";
import type { SearchLifecycle } from "../search/lifecycle.ts";
import type { RetentionStore } from "../store/retention-store.ts";
import { archiveProblem, decodeArchive } from "./archive-object.ts";
import { LIFECYCLE_LOCK_KEY, withLifecycleLock } from "./lifecycle-lock.ts";

export class RestoreUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RestoreUnavailableError";
  }
}

export type RestoreResult = { events: number; archives: number };

export class ArchiveRestore {
  private readonly pool: Pool;
  private readonly store: RetentionStore;
  private readonly archive: ArchiveStore | null;
  private readonly search: SearchLifecycle | null;

  constructor(deps: { pool: Pool; store: RetentionStore; archive: ArchiveStore | null; search: SearchLifecycle | null }) {
    this.pool = deps.pool;
    this.store = deps.store;
    this.archive = deps.archive;
    this.search = deps.search;
  }

  /** Indexes the tenant's archived events received in [from, to) until the end of `until`'s day. */
  async restore(tenantId: string, from: Date, to: Date, until: Date): Promise<RestoreResult> {
    const archive = this.archive;
    const search = this.search;
    if (!archive) throw new RestoreUnavailableError("no archive bucket is configured (AUDITLOG_ARCHIVE_S3_BUCKET)");
    if (!search) throw new RestoreUnavailableError("restoring into search needs Elasticsearch (ELASTICSEARCH_URL)");
    // Not beside an erasure: documents restored from an object it is rewriting would escape it.
    return (await withLifecycleLock(this.pool, LIFECYCLE_LOCK_KEY, true, () =>
      this.restoreLocked(archive, search, tenantId, from, to, until),
    ))!;
  }

  private async restoreLocked(
    archive: ArchiveStore,
    search: SearchLifecycle,
    tenantId: string,
    from: Date,
    to: Date,
    until: Date,
  ): Promise<RestoreResult> {
    const lo = BigInt(from.getTime()) * 1000n;
    const hi = BigInt(to.getTime()) * 1000n;
    let events = 0;
    let archives = 0;
    for (const a of await this.store.archivesOverlapping(tenantId, from, to)) {
      const body = await archive.get(a.objectKey);
      if (body === null) throw new Error(`archive ${a.objectKey} is missing from the bucket`);
      const problem = archiveProblem(body, a);
      if (problem) throw new Error(`archive ${a.objectKey} does not verify, not restoring it: ${problem}`);
      const records = decodeArchive(body).filter((r) => r.receivedAt >= lo && r.receivedAt < hi);
      await search.indexRestored(records, until);
      events += records.length;
      archives++;
    }
    return { events, archives };
  }
}
