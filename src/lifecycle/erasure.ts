// Erasure of a person's data (AdminService.EraseSubject; docs/HASH_CHAIN.md,
// "Erased events"): in PostgreSQL, in the search index and in archive
// objects. Each step can be repeated: a failed or killed erasure is finished
// by calling it again with the same subject (it only looks for events not
// yet erased).
import type { Pool, PoolClient } from "pg";
import type { ArchiveStore } from "../archive/object-store.ts";
import { ERASABLE_FIELDS, type ErasureSubject, erasedRecord, matchesSubject } from "../domain/erasure.ts";
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

/**
 * Whether `value` is a number as JavaScript writes one ("42", "1.5",
 * "1e+21"): only then can a JSON number's text (String(n), how
 * matchesSubject compares numbers) equal it.
 */
function numberText(value: string): boolean {
  return value.trim() !== "" && String(Number(value)) === value;
}

/**
 * Rows whose `json` (a jsonb expression) holds a scalar that may have the
 * text `$3`: a string or boolean with exactly that text, or, when `$4` (the
 * value is a number's text), any number. PostgreSQL writes numbers its own
 * way (`1.0` stays `1.0`), so they are left to matchesSubject.
 */
function scalarIn(json: string): string {
  return `EXISTS (SELECT 1 FROM jsonb_path_query(${json}, 'strict $.**') AS j(x)
                   WHERE (jsonb_typeof(x) IN ('string', 'boolean') AND x #>> '{}' = $3)
                      OR ($4::boolean AND jsonb_typeof(x) = 'number'))`;
}

/**
 * Rows that may be about the subject (`$3` its value, `$4` whether that is
 * a number's text): exactly the matching ones for an envelope field, more
 * for metadata and any field. matchesSubject decides among them, so
 * PostgreSQL and the archives are erased by the same definition.
 */
function candidates(s: ErasureSubject): { sql: string; values: unknown[] } {
  switch (s.kind) {
    case "field":
      return { sql: `${ERASABLE_FIELDS[s.field]} = $3`, values: [s.value] };
    case "metadata":
      return { sql: scalarIn("metadata"), values: [s.value, numberText(s.value)] };
    case "any": {
      const columns = Object.values(ERASABLE_FIELDS).map((column) => `${column} = $3`);
      return {
        sql: `(${columns.join(" OR ")} OR ${scalarIn("jsonb_build_array(metadata, changes)")})`,
        values: [s.value, numberText(s.value)],
      };
    }
  }
}

/**
 * The erasure in the rows: personal content, the salt and the kept fields
 * that hold the erased value (as erasedRecord left them) go; the idempotency
 * rows lose their content digest, which would confirm a guess as well as
 * the salt could.
 */
async function eraseRows(db: PoolClient, tenantId: string, redacted: readonly StoredRecord[]): Promise<void> {
  await db.query(
    `UPDATE events e SET actor_id = '', actor_name = '', actor_ip = '', actor_user_agent = '', actor_session_id = '',
            target_type = u.target_type,
            target_id = CASE WHEN u.target_type IS NULL THEN NULL ELSE '' END,
            target_name = CASE WHEN u.target_type IS NULL THEN NULL ELSE '' END,
            request_id = u.request_id, trace_id = u.trace_id, source = u.source,
            location = '', message = '', metadata = NULL, changes = NULL, salt = NULL, erased_at = now()
       FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(sequence, target_type, request_id, trace_id, source)
      WHERE e.tenant_id = $1 AND e.sequence = u.sequence`,
    [
      tenantId,
      redacted.map((r) => r.sequence.toString()),
      redacted.map((r) => r.target?.type ?? null),
      redacted.map((r) => r.context.requestId),
      redacted.map((r) => r.context.traceId),
      redacted.map((r) => r.context.source),
    ],
  );
  await forgetDigests(db, tenantId, redacted);
}

async function forgetDigests(db: PoolClient, tenantId: string, records: readonly StoredRecord[]): Promise<void> {
  await db.query("UPDATE event_ids SET content_hash = '' WHERE tenant_id = $1 AND event_id = ANY($2::text[])", [
    tenantId,
    records.map((r) => r.id),
  ]);
}

export class Erasure {
  private readonly d: ErasureDeps;

  constructor(deps: ErasureDeps) {
    this.d = deps;
  }

  /** Waits for a retention round or restore in progress (lifecycle-lock.ts), then erases. */
  async erase(tenantId: string, subject: ErasureSubject): Promise<ErasureCounts> {
    return (await withLifecycleLock(this.d.pool, LIFECYCLE_LOCK_KEY, true, () => this.eraseLocked(tenantId, subject)))!;
  }

  private async eraseLocked(tenantId: string, subject: ErasureSubject): Promise<ErasureCounts> {
    const events = await this.erasePostgres(tenantId, subject);
    const archives = await this.eraseArchives(tenantId, subject);
    // Documents brought back by RestoreArchive came from the objects as they were: they go.
    if (this.d.search) await this.d.search.deleteRestoredMatching(tenantId, subject);
    return { events, archives };
  }

  /**
   * Erases matching rows a chunk of candidates per transaction (each chunk
   * continues after the last sequence of the one before), re-indexing each
   * chunk's documents redacted.
   */
  private async erasePostgres(tenantId: string, subject: ErasureSubject): Promise<number> {
    let erased = 0;
    let after = 0n;
    for (;;) {
      const where = candidates(subject);
      const chunk = await withSystemScope(this.d.pool, async (db) => {
        const { rows } = await db.query<EventRow>(
          `SELECT ${EVENT_COLUMNS} FROM events
            WHERE tenant_id = $1 AND sequence > $2 AND erased_at IS NULL AND ${where.sql}
            ORDER BY sequence LIMIT ${CHUNK} FOR UPDATE`,
          [tenantId, after.toString(), ...where.values],
        );
        if (rows.length === 0) return null;
        const candidates = rows.map(recordFromRow);
        const redacted = candidates.filter((r) => matchesSubject(r, subject)).map((r) => erasedRecord(r, subject));
        if (redacted.length > 0) await eraseRows(db, tenantId, redacted);
        return { last: candidates.at(-1)!.sequence, redacted };
      });
      if (chunk === null) return erased;
      after = chunk.last;
      // The documents of events beyond the searchable window were removed and stay removed.
      if (this.d.search && chunk.redacted.length > 0) await this.d.search.reindex(await this.stillSearchable(tenantId, chunk.redacted));
      erased += chunk.redacted.length;
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

  /**
   * Rewrites every archive object of the tenant that holds a matching event
   * not yet erased. The idempotency rows of its events lose their digests
   * first, so a call killed before the object was written does it again.
   */
  private async eraseArchives(tenantId: string, subject: ErasureSubject): Promise<number> {
    if (!this.d.archive) return 0;
    let rewritten = 0;
    for (const a of await this.d.store.archives(tenantId)) {
      const body = await this.verifiedObject(this.d.archive, a);
      const erasedNow: StoredRecord[] = [];
      const records = decodeArchive(body).map((r) => {
        if (r.erased || !matchesSubject(r, subject)) return r;
        // The line carries no content hash: computed from the intact line (with its salt) before the erasure.
        const e = erasedRecord({ ...r, contentHash: contentHash(r) }, subject);
        erasedNow.push(e);
        return e;
      });
      if (erasedNow.length === 0) continue;
      await withSystemScope(this.d.pool, (db) => forgetDigests(db, tenantId, erasedNow));
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
