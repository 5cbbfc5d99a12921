// PostgreSQL side of the data lifecycle (migrations/0011_retention.sql):
// policies, the retention state (searchable_from, chain anchor), archive
// bookkeeping, and the deletion of archived events in small transactions.
//
// Deletions never touch chain_heads, so they never wait for or block the
// writer; each chunk deletes at most `chunk` rows and moves the chain anchor
// in the same transaction, so a kill between chunks leaves a consistent
// state (rows below the anchor are gone, rows above it are all there).
import type { Pool, PoolClient } from "pg";
import type { StoredRecord } from "../domain/event-record.ts";
import type { RetentionPolicy } from "../domain/retention.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "./event-rows.ts";
import { systemQuery, withSystemScope } from "./system-scope.ts";

export type ArchiveRow = {
  tenantId: string;
  firstSequence: bigint;
  lastSequence: bigint;
  count: bigint;
  firstReceived: string;
  lastReceived: string;
  firstPrevHash: string;
  lastHash: string;
  objectKey: string;
  sha256: string;
  state: "archived" | "deleted";
};

export type ChainAnchor = { sequence: bigint; hash: string };

type ArchiveDbRow = {
  tenant_id: string;
  first_sequence: string;
  last_sequence: string;
  event_count: string;
  first_received: string;
  last_received: string;
  first_prev_hash: string;
  last_hash: string;
  object_key: string;
  sha256: string;
  state: "archived" | "deleted";
};

const ARCHIVE_COLUMNS = `tenant_id, first_sequence, last_sequence, event_count,
  to_char(first_received AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS first_received,
  to_char(last_received AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_received,
  first_prev_hash, last_hash, object_key, sha256, state`;

function archiveFromRow(r: ArchiveDbRow): ArchiveRow {
  return {
    tenantId: r.tenant_id,
    firstSequence: BigInt(r.first_sequence),
    lastSequence: BigInt(r.last_sequence),
    count: BigInt(r.event_count),
    firstReceived: r.first_received,
    lastReceived: r.last_received,
    firstPrevHash: r.first_prev_hash,
    lastHash: r.last_hash,
    objectKey: r.object_key,
    sha256: r.sha256,
    state: r.state,
  };
}

/** The chain anchor of a tenant inside a tenant-scoped read (VerifyChain); null when nothing was removed. */
export async function chainAnchor(db: PoolClient, tenantId: string): Promise<ChainAnchor | null> {
  const r = await db.query<{ anchor_sequence: string; anchor_hash: string }>(
    "SELECT anchor_sequence, anchor_hash FROM retention_state WHERE tenant_id = $1",
    [tenantId],
  );
  const row = r.rows[0];
  if (!row || row.anchor_sequence === "0") return null;
  return { sequence: BigInt(row.anchor_sequence), hash: row.anchor_hash };
}

/** Received_at before which the tenant's events are no longer in the search index (null: all are), for a system-scope statement. */
export async function searchableFrom(pool: Pool, tenantId: string): Promise<string | null> {
  const r = await systemQuery<{ t: string | null }>(
    pool,
    `SELECT to_char(searchable_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t FROM retention_state WHERE tenant_id = $1`,
    [tenantId],
  );
  return r.rows[0]?.t ?? null;
}

export class RetentionStore {
  private readonly pool: Pool;

  constructor(pool: Pool) {
    this.pool = pool;
  }

  async policy(tenantId: string): Promise<RetentionPolicy | null> {
    const r = await systemQuery<{ searchable_days: number; keep_days: number }>(
      this.pool,
      "SELECT searchable_days, keep_days FROM retention_policies WHERE tenant_id = $1",
      [tenantId],
    );
    const row = r.rows[0];
    return row ? { searchableDays: row.searchable_days, keepDays: row.keep_days } : null;
  }

  /** Sets (or, with both periods 0, removes) the tenant's policy. False when there is no such tenant. */
  async setPolicy(tenantId: string, p: RetentionPolicy): Promise<boolean> {
    return withSystemScope(this.pool, async (db) => {
      const t = await db.query("SELECT 1 FROM tenants WHERE id = $1", [tenantId]);
      if (!t.rowCount) return false;
      if (p.searchableDays === 0 && p.keepDays === 0) {
        await db.query("DELETE FROM retention_policies WHERE tenant_id = $1", [tenantId]);
        return true;
      }
      await db.query(
        `INSERT INTO retention_policies (tenant_id, searchable_days, keep_days) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET searchable_days = $2, keep_days = $3, updated_at = now()`,
        [tenantId, p.searchableDays, p.keepDays],
      );
      return true;
    });
  }

  /** Every tenant's policy; tenants without one keep everything. */
  async policies(): Promise<Map<string, RetentionPolicy>> {
    const r = await systemQuery<{ tenant_id: string; searchable_days: number; keep_days: number }>(
      this.pool,
      "SELECT tenant_id, searchable_days, keep_days FROM retention_policies",
    );
    return new Map(r.rows.map((x) => [x.tenant_id, { searchableDays: x.searchable_days, keepDays: x.keep_days }]));
  }

  async tenantCount(): Promise<number> {
    const r = await systemQuery<{ n: string }>(this.pool, "SELECT count(*) AS n FROM tenants");
    return Number(r.rows[0]!.n);
  }

  /** Recorded before the documents go, so the reconciler never puts back what retention is removing. */
  async setSearchableFrom(tenantId: string, from: Date): Promise<void> {
    await systemQuery(
      this.pool,
      `INSERT INTO retention_state (tenant_id, searchable_from) VALUES ($1, $2)
       ON CONFLICT (tenant_id) DO UPDATE SET searchable_from = greatest(retention_state.searchable_from, $2), updated_at = now()`,
      [tenantId, from],
    );
  }

  async anchor(tenantId: string): Promise<ChainAnchor | null> {
    return withSystemScope(this.pool, (db) => chainAnchor(db, tenantId));
  }

  /** Up to `limit` of the tenant's lowest remaining events, in sequence order. */
  async oldest(tenantId: string, after: bigint, limit: number): Promise<StoredRecord[]> {
    const r = await systemQuery<EventRow>(
      this.pool,
      `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3`,
      [tenantId, after.toString(), limit],
    );
    return r.rows.map(recordFromRow);
  }

  /** The events of a sequence range, in order (an archive being rewritten or checked). */
  async range(tenantId: string, first: bigint, last: bigint): Promise<StoredRecord[]> {
    const r = await systemQuery<EventRow>(
      this.pool,
      `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND sequence BETWEEN $2 AND $3 ORDER BY sequence`,
      [tenantId, first.toString(), last.toString()],
    );
    return r.rows.map(recordFromRow);
  }

  async archives(tenantId: string, state?: "archived" | "deleted"): Promise<ArchiveRow[]> {
    const r = await systemQuery<ArchiveDbRow>(
      this.pool,
      `SELECT ${ARCHIVE_COLUMNS} FROM archives WHERE tenant_id = $1 AND ($2::text IS NULL OR state = $2) ORDER BY first_sequence`,
      [tenantId, state ?? null],
    );
    return r.rows.map(archiveFromRow);
  }

  /** The archives holding events received in [from, to), in sequence order. */
  async archivesOverlapping(tenantId: string, from: Date, to: Date): Promise<ArchiveRow[]> {
    const r = await systemQuery<ArchiveDbRow>(
      this.pool,
      `SELECT ${ARCHIVE_COLUMNS} FROM archives
        WHERE tenant_id = $1 AND first_received < $3 AND last_received >= $2 ORDER BY first_sequence`,
      [tenantId, from, to],
    );
    return r.rows.map(archiveFromRow);
  }

  async recordArchive(a: Omit<ArchiveRow, "state">): Promise<void> {
    await systemQuery(
      this.pool,
      `INSERT INTO archives (tenant_id, first_sequence, last_sequence, event_count, first_received, last_received,
                             first_prev_hash, last_hash, object_key, sha256, state)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'archived')`,
      [
        a.tenantId,
        a.firstSequence.toString(),
        a.lastSequence.toString(),
        a.count.toString(),
        a.firstReceived,
        a.lastReceived,
        a.firstPrevHash,
        a.lastHash,
        a.objectKey,
        a.sha256,
      ],
    );
  }

  async markDeleted(tenantId: string, firstSequence: bigint): Promise<void> {
    await systemQuery(this.pool, "UPDATE archives SET state = 'deleted' WHERE tenant_id = $1 AND first_sequence = $2", [
      tenantId,
      firstSequence.toString(),
    ]);
  }

  /** After an erasure rewrote the object: its new digest. */
  async archiveRewritten(tenantId: string, firstSequence: bigint, sha256: string): Promise<void> {
    await systemQuery(this.pool, "UPDATE archives SET sha256 = $3, rewritten_at = now() WHERE tenant_id = $1 AND first_sequence = $2", [
      tenantId,
      firstSequence.toString(),
      sha256,
    ]);
  }

  async recordErasure(
    tenantId: string,
    id: string,
    subjectHash: string,
    field: string,
    counts: { events: number; archives: number },
  ): Promise<void> {
    await systemQuery(
      this.pool,
      "INSERT INTO erasures (tenant_id, id, subject_hash, field, events, archives) VALUES ($1, $2, $3, $4, $5, $6)",
      [tenantId, id, subjectHash, field, counts.events, counts.archives],
    );
  }

  /**
   * Deletes the tenant's events from the anchor up to `last`, at most
   * `chunk` per transaction, each transaction moving the anchor to the last
   * event it deleted. Resolves with how many rows went.
   */
  async deleteThrough(tenantId: string, last: bigint, chunk: number, afterChunk?: () => Promise<void>): Promise<number> {
    let deleted = 0;
    for (;;) {
      const n = await withSystemScope(this.pool, async (db) => {
        const a = await chainAnchor(db, tenantId);
        const from = (a?.sequence ?? 0n) + 1n;
        if (from > last) return 0;
        const to = from + BigInt(chunk) - 1n < last ? from + BigInt(chunk) - 1n : last;
        const r = await db.query<{ sequence: string; hash: string }>(
          "DELETE FROM events WHERE tenant_id = $1 AND sequence BETWEEN $2 AND $3 RETURNING sequence, hash",
          [tenantId, from.toString(), to.toString()],
        );
        const top = r.rows.reduce<{ sequence: string; hash: string } | null>(
          (m, x) => (m === null || BigInt(x.sequence) > BigInt(m.sequence) ? x : m),
          null,
        );
        if (top === null || BigInt(top.sequence) !== to) {
          throw new Error(`retention: events ${from}..${to} of tenant ${tenantId} are not all there; refusing to move the chain anchor`);
        }
        await db.query(
          `INSERT INTO retention_state (tenant_id, anchor_sequence, anchor_hash) VALUES ($1, $2, $3)
           ON CONFLICT (tenant_id) DO UPDATE SET anchor_sequence = $2, anchor_hash = $3, updated_at = now()`,
          [tenantId, top.sequence, top.hash],
        );
        return r.rowCount ?? 0;
      });
      if (n === 0) return deleted;
      deleted += n;
      await afterChunk?.();
    }
  }

  /**
   * Drops monthly partitions that end before `before` and hold no rows
   * (retention deleted them all). lock_timeout bounds the wait for the
   * parent's lock, so ingest is never queued behind a long wait: a busy
   * moment means trying again next run.
   */
  async dropEmptyPartitions(before: Date): Promise<string[]> {
    const parts = await this.pool.query<{ name: string; upper: string }>(
      `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS upper
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'events' AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'`,
    );
    const dropped: string[] = [];
    for (const p of parts.rows) {
      const m = /TO \('([^']+)'\)/.exec(p.upper);
      if (!m || !(new Date(m[1]!) <= before)) continue;
      const done = await withSystemScope(this.pool, async (db) => {
        await db.query("SET LOCAL lock_timeout = '2s'");
        const rows = await db.query(`SELECT 1 FROM ${p.name} LIMIT 1`);
        if (rows.rowCount) return false;
        await db.query(`DROP TABLE ${p.name}`);
        return true;
      }).catch(() => false);
      if (done) dropped.push(p.name);
    }
    return dropped;
  }
}
