// Erasure of a person's data (AdminService.EraseSubject; docs/HASH_CHAIN.md,
// "Erased events"): in PostgreSQL, in the search index and in archive
// objects. Each step can be repeated: a failed or killed erasure is finished
// by calling it again with the same subject (it only looks for events not
// yet erased).
import type { Pool } from "pg";
import type { ArchiveStore } from "../archive/object-store.ts";
import { type ErasableField, ERASABLE_FIELDS, erasedRecord, fieldValue } from "../domain/erasure.ts";
import type { StoredRecord } from "../domain/event-record.ts";
import { contentHash } from "../domain/hash-chain.ts";
import { archiveManifestJson } from "../domain/retention.ts";
import type { SigningKey } from "../domain/signing.ts";
import type { SearchLifecycle } from "../search/lifecycle.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../store/event-rows.ts";
import { type ArchiveRow, type RetentionStore, searchableFrom } from "../store/retention-store.ts";
import { withSystemScope } from "../store/system-scope.ts";
import { archiveProblem, decodeArchive, encodeArchive } from "./archive-object.ts";
import { LIFECYCLE_LOCK_KEY, withLifecycleLock } from "./lifecycle-lock.ts";

const CHUNK = 1000;

export type ErasureDeps = {
  pool: Pool;
  store: RetentionStore;
  archive: ArchiveStore | null;
  search: SearchLifecycle | null;
  signingKey?: SigningKey;
};

export type ErasureCounts = { events: number; archives: number };

export class Erasure {
  private readonly d: ErasureDeps;

  constructor(deps: ErasureDeps) {
    this.d = deps;
  }

  /** Waits for a retention round or restore in progress (lifecycle-lock.ts), then erases. */
  async erase(tenantId: string, field: ErasableField, value: string): Promise<ErasureCounts> {
    return (await withLifecycleLock(this.d.pool, LIFECYCLE_LOCK_KEY, true, () => this.eraseLocked(tenantId, field, value)))!;
  }

  private async eraseLocked(tenantId: string, field: ErasableField, value: string): Promise<ErasureCounts> {
    const events = await this.erasePostgres(tenantId, field, value);
    const archives = await this.eraseArchives(tenantId, field, value);
    // Documents brought back by RestoreArchive came from the objects as they were: they go.
    if (this.d.search) await this.d.search.deleteRestoredMatching(tenantId, field, value);
    return { events, archives };
  }

  /** Erases matching rows a chunk per transaction, re-indexing each chunk's documents redacted. */
  private async erasePostgres(tenantId: string, field: ErasableField, value: string): Promise<number> {
    const column = ERASABLE_FIELDS[field];
    let erased = 0;
    for (;;) {
      const redacted = await withSystemScope(this.d.pool, async (db) => {
        const { rows } = await db.query<EventRow>(
          `SELECT ${EVENT_COLUMNS} FROM events
            WHERE tenant_id = $1 AND ${column} = $2 AND erased_at IS NULL
            ORDER BY sequence LIMIT ${CHUNK} FOR UPDATE`,
          [tenantId, value],
        );
        if (rows.length === 0) return [];
        await db.query(
          `UPDATE events SET actor_id = '', actor_name = '', actor_ip = '', actor_user_agent = '', actor_session_id = '',
                  target_id = CASE WHEN target_type IS NULL THEN NULL ELSE '' END,
                  target_name = CASE WHEN target_type IS NULL THEN NULL ELSE '' END,
                  location = '', message = '', metadata = NULL, changes = NULL, erased_at = now()
            WHERE tenant_id = $1 AND sequence = ANY($2::bigint[])`,
          [tenantId, rows.map((r) => r.sequence)],
        );
        return rows.map((r) => erasedRecord(recordFromRow(r)));
      });
      if (redacted.length === 0) return erased;
      // The documents of events beyond the searchable window were removed and stay removed.
      if (this.d.search) await this.d.search.reindex(await this.stillSearchable(tenantId, redacted));
      erased += redacted.length;
    }
  }

  private async stillSearchable(tenantId: string, records: StoredRecord[]): Promise<StoredRecord[]> {
    const since = await searchableFrom(this.d.pool, tenantId);
    if (since === null) return records;
    const limit = BigInt(Date.parse(since)) * 1000n;
    return records.filter((r) => r.receivedAt >= limit);
  }

  /**
   * The archive object, checked against its row (digest, chain ends). An
   * erasure killed between rewriting an object and recording its new digest
   * left a newer object: accepted when its own manifest names its digest and
   * the chain ends are unchanged (an erasure never changes them).
   */
  private async verifiedObject(archive: ArchiveStore, a: ArchiveRow): Promise<Uint8Array> {
    const body = await archive.get(a.objectKey);
    if (body === null) throw new Error(`archive ${a.objectKey} of tenant ${a.tenantId} is missing from the bucket`);
    let problem = archiveProblem(body, a);
    if (problem?.startsWith("SHA-256")) {
      const m = await archive.get(`${a.objectKey}.manifest.json`);
      const sha = m === null ? "" : String((JSON.parse(Buffer.from(m).toString("utf8")) as { sha256?: unknown }).sha256);
      problem = archiveProblem(body, { ...a, sha256: sha });
      if (problem === null) await this.d.store.archiveRewritten(a.tenantId, a.firstSequence, sha);
    }
    if (problem) throw new Error(`archive ${a.objectKey} does not verify, not rewriting it: ${problem}`);
    return body;
  }

  /** Rewrites every archive object of the tenant that holds a matching event not yet erased. */
  private async eraseArchives(tenantId: string, field: ErasableField, value: string): Promise<number> {
    if (!this.d.archive) return 0;
    let rewritten = 0;
    for (const a of await this.d.store.archives(tenantId)) {
      const body = await this.verifiedObject(this.d.archive, a);
      let changed = false;
      const records = decodeArchive(body).map((r) => {
        if (r.erased || fieldValue(r, field) !== value) return r;
        changed = true;
        return erasedRecord({ ...r, contentHash: contentHash(r) });
      });
      if (!changed) continue;
      const { body: next, manifest } = encodeArchive(a.objectKey, records, this.d.signingKey);
      const nextProblem = archiveProblem(next, manifest);
      if (nextProblem) throw new Error(`rewritten archive ${a.objectKey} does not verify: ${nextProblem}`);
      await this.d.archive.put(a.objectKey, next, "application/gzip");
      await this.d.archive.put(`${a.objectKey}.manifest.json`, Buffer.from(archiveManifestJson(manifest)), "application/json");
      await this.d.store.archiveRewritten(tenantId, a.firstSequence, manifest.sha256);
      rewritten++;
    }
    return rewritten;
  }
}
