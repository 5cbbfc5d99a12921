// Every statement on the search index's bookkeeping: the committed heads
// (chain_heads, read only; the writer moves them), how far each tenant is
// indexed (index_progress) and the events the index refused for their
// content (index_failures). The indexer, reconciler, index health and both
// search backends go through here, so that the meaning of "indexed up to N"
// and of a recorded refusal is written down once.
//
// Each function keeps the scope its callers need: chain_heads is under
// forced row-level security, so cross-tenant reads run in system scope,
// and `committedHead` runs in the caller's transaction (tenant-scoped for
// reads, system scope for the reconciler).
import type { Pool, PoolClient } from "pg";
import { SYSTEM_SCOPE_BEGIN, systemQuery, withSystemScope } from "./system-scope.ts";

export type Queryable = Pool | PoolClient;

/** An event the index refused for its own content, skipped by the indexer. */
export type Refusal = { sequence: bigint; eventId: string; reason: string };

// ---------------------------------------------------------------------------
// Committed heads

/** The tenant's last committed sequence (0 before its first event), in the caller's transaction. */
export async function committedHead(db: Queryable, tenantId: string): Promise<bigint> {
  const r = await db.query<{ sequence: string }>("SELECT sequence FROM chain_heads WHERE tenant_id = $1", [tenantId]);
  return BigInt(r.rows[0]?.sequence ?? "0");
}

/** committedHead in a system-scope transaction of its own. */
export function committedHeadSystem(pool: Pool, tenantId: string): Promise<bigint> {
  return withSystemScope(pool, (db) => committedHead(db, tenantId));
}

/** Every tenant's committed head. */
export async function committedHeads(pool: Pool): Promise<Map<string, bigint>> {
  const { rows } = await systemQuery<{ tenant_id: string; sequence: string }>(pool, "SELECT tenant_id, sequence FROM chain_heads");
  return new Map(rows.map((r) => [r.tenant_id, BigInt(r.sequence)] as const));
}

/** Every tenant, in id order. */
export async function tenantIds(pool: Pool): Promise<string[]> {
  const { rows } = await systemQuery<{ tenant_id: string }>(pool, "SELECT tenant_id FROM chain_heads ORDER BY tenant_id");
  return rows.map((r) => r.tenant_id);
}

/** How many tenants and committed events there are. */
export async function committedTotals(pool: Pool): Promise<{ tenants: string; events: string }> {
  const { rows } = await systemQuery<{ tenants: string; events: string }>(
    pool,
    "SELECT count(*) AS tenants, coalesce(sum(sequence), 0) AS events FROM chain_heads",
  );
  return rows[0]!;
}

// ---------------------------------------------------------------------------
// Index progress

/** The tenant's highest searchable sequence (0 before anything was indexed). */
export async function indexedPosition(pool: Pool, tenantId: string): Promise<bigint> {
  const r = await systemQuery<{ indexed_sequence: string }>(pool, "SELECT indexed_sequence FROM index_progress WHERE tenant_id = $1", [
    tenantId,
  ]);
  return BigInt(r.rows[0]?.indexed_sequence ?? "0");
}

/** Every tenant's indexed position that has one. */
export async function indexedPositions(pool: Pool): Promise<Map<string, bigint>> {
  const { rows } = await systemQuery<{ tenant_id: string; indexed: string }>(
    pool,
    "SELECT tenant_id, indexed_sequence AS indexed FROM index_progress",
  );
  return new Map(rows.map((r) => [r.tenant_id, BigInt(r.indexed)]));
}

/** Head and indexed position of every tenant, in id order. */
export async function headsAndProgress(pool: Pool): Promise<{ tenantId: string; head: bigint; indexed: bigint }[]> {
  const { rows } = await systemQuery<{ tenant_id: string; head: string; indexed: string }>(
    pool,
    `SELECT h.tenant_id, h.sequence AS head, coalesce(p.indexed_sequence, 0) AS indexed
       FROM chain_heads h LEFT JOIN index_progress p USING (tenant_id)
      ORDER BY h.tenant_id`,
  );
  return rows.map((r) => ({ tenantId: r.tenant_id, head: BigInt(r.head), indexed: BigInt(r.indexed) }));
}

/**
 * Moves the tenant's progress from `from` to `to` if it still is at `from`
 * (compare-and-set: two indexers at once cannot move it over an unindexed
 * event), recording `refusals` in the same transaction. False when someone
 * else moved it.
 */
export async function advanceProgress(pool: Pool, tenantId: string, from: bigint, to: bigint, refusals: Refusal[]): Promise<boolean> {
  const cas = (db: Queryable) =>
    db.query(
      `INSERT INTO index_progress AS p (tenant_id, indexed_sequence, updated_at) VALUES ($1, $3, now())
       ON CONFLICT (tenant_id) DO UPDATE SET indexed_sequence = EXCLUDED.indexed_sequence, updated_at = now()
       WHERE p.indexed_sequence = $2`,
      [tenantId, from.toString(), to.toString()],
    );
  if (refusals.length === 0) return (await withSystemScope(pool, cas)).rowCount === 1;
  const db = await pool.connect();
  try {
    await db.query(SYSTEM_SCOPE_BEGIN);
    const moved = (await cas(db)).rowCount === 1;
    if (moved) await recordRefusals(db, tenantId, refusals);
    await db.query(moved ? "COMMIT" : "ROLLBACK");
    return moved;
  } catch (err) {
    await db.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    db.release();
  }
}

/**
 * Every tenant back to nothing indexed and nothing refused, in one
 * statement so that a running indexer never sees one without the other.
 */
export async function resetProgress(pool: Pool): Promise<void> {
  await systemQuery(pool, "WITH forget AS (DELETE FROM index_failures) UPDATE index_progress SET indexed_sequence = 0, updated_at = now()");
}

/** Whether the bookkeeping tables are there (migrations applied); throws PostgreSQL's error if not. */
export async function checkProgressTable(pool: Pool): Promise<void> {
  await systemQuery(pool, "SELECT 1 FROM index_progress LIMIT 1");
}

/** Lag over all tenants: how many are behind, by how many events, and the oldest waiting event's age. */
export async function indexLag(pool: Pool): Promise<{ tenants: string; events: string; seconds: number | null }> {
  const { rows } = await systemQuery<{ tenants: string; events: string; seconds: number | null }>(
    pool,
    `SELECT count(*) AS tenants,
            coalesce(sum(h.sequence - coalesce(p.indexed_sequence, 0)), 0) AS events,
            max(extract(epoch FROM now() - f.received_at))::float8 AS seconds
       FROM chain_heads h
       LEFT JOIN index_progress p USING (tenant_id)
       LEFT JOIN LATERAL (
         SELECT e.received_at FROM events e
          WHERE e.tenant_id = h.tenant_id AND e.sequence > coalesce(p.indexed_sequence, 0)
          ORDER BY e.sequence LIMIT 1) f ON true
      WHERE h.sequence > coalesce(p.indexed_sequence, 0)`,
  );
  return rows[0]!;
}

/**
 * Tenants whose waiting events and progress both are older than
 * `stallSeconds` (a backlog being worked off is not stalled), with their
 * waiting events and the longest idle time; and refusals of the last
 * `refusalHours`, all tenants.
 */
export async function stalledIndexing(
  pool: Pool,
  stallSeconds: number,
  refusalHours: number,
): Promise<{ tenants: string; events: string; idle: number | null; refused: string }> {
  const { rows } = await systemQuery<{ tenants: string; events: string; idle: number | null; refused: string }>(
    pool,
    `SELECT count(*) FILTER (WHERE idle > $1) AS tenants,
            coalesce(sum(behind) FILTER (WHERE idle > $1), 0) AS events,
            max(idle) FILTER (WHERE idle > $1) AS idle,
            (SELECT count(*) FROM index_failures WHERE failed_at > now() - make_interval(hours => $2)) AS refused
       FROM (
         SELECT h.sequence - coalesce(p.indexed_sequence, 0) AS behind,
                extract(epoch FROM now() - greatest(p.updated_at, f.received_at))::float8 AS idle
           FROM chain_heads h
           LEFT JOIN index_progress p USING (tenant_id)
           LEFT JOIN LATERAL (
             SELECT e.received_at FROM events e
              WHERE e.tenant_id = h.tenant_id AND e.sequence > coalesce(p.indexed_sequence, 0)
              ORDER BY e.sequence LIMIT 1) f ON true
          WHERE h.sequence > coalesce(p.indexed_sequence, 0)) t`,
    [stallSeconds, refusalHours],
  );
  return rows[0]!;
}

export type TenantProgress = {
  committed: bigint;
  indexed: bigint;
  /** Age of the first unindexed event, null when none waits. */
  lagSeconds: number | null;
  lastReconcile: {
    finishedAt: Date;
    windowsChecked: bigint;
    windowsWithGaps: bigint;
    eventsRepaired: bigint;
    documentsRemoved: bigint;
  } | null;
};

/** Head, progress, lag and latest reconcile report of one tenant; null for an unknown tenant. */
export async function tenantProgress(pool: Pool, tenantId: string): Promise<TenantProgress | null> {
  const { rows } = await systemQuery<{
    committed: string;
    indexed: string;
    lag_seconds: number | null;
    finished_at: Date | null;
    windows_checked: string | null;
    windows_with_gaps: string | null;
    events_repaired: string | null;
    documents_removed: string | null;
  }>(
    pool,
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
  if (!r) return null;
  return {
    committed: BigInt(r.committed),
    indexed: BigInt(r.indexed),
    lagSeconds: r.lag_seconds,
    lastReconcile:
      r.finished_at === null
        ? null
        : {
            finishedAt: r.finished_at,
            windowsChecked: BigInt(r.windows_checked!),
            windowsWithGaps: BigInt(r.windows_with_gaps!),
            eventsRepaired: BigInt(r.events_repaired!),
            documentsRemoved: BigInt(r.documents_removed!),
          },
  };
}

// ---------------------------------------------------------------------------
// Refused documents

/** Events of `events` (the table, unaliased) that the index did not refuse: the events the index should hold. */
export const NOT_REFUSED = `NOT EXISTS (SELECT 1 FROM index_failures f WHERE f.tenant_id = events.tenant_id AND f.sequence = events.sequence)`;

/** Records refusals (a re-delivery refused again updates its row). */
export async function recordRefusals(db: Queryable, tenantId: string, refusals: Refusal[]): Promise<void> {
  if (refusals.length === 0) return;
  await db.query(
    `INSERT INTO index_failures (tenant_id, sequence, event_id, reason, failed_at)
     SELECT $1, s, e, r, now() FROM unnest($2::bigint[], $3::text[], $4::text[]) AS t(s, e, r)
     ON CONFLICT (tenant_id, sequence) DO UPDATE SET event_id = EXCLUDED.event_id, reason = EXCLUDED.reason, failed_at = EXCLUDED.failed_at`,
    [tenantId, refusals.map((r) => r.sequence.toString()), refusals.map((r) => r.eventId), refusals.map((r) => r.reason)],
  );
}

/** How many events of the tenant were refused, and the latest `limit`, newest first. */
export async function listRefusals(
  pool: Pool,
  tenantId: string,
  limit: number,
): Promise<{ count: bigint; recent: { sequence: bigint; eventId: string; reason: string; refusedAt: Date }[] }> {
  const { rows } = await systemQuery<{
    n: string;
    sequence: string | null;
    event_id: string | null;
    reason: string | null;
    failed_at: Date | null;
  }>(
    pool,
    `SELECT c.n, f.sequence, f.event_id, f.reason, f.failed_at
       FROM (SELECT count(*) AS n FROM index_failures WHERE tenant_id = $1) c
       LEFT JOIN LATERAL (
         SELECT sequence, event_id, reason, failed_at FROM index_failures
          WHERE tenant_id = $1 ORDER BY failed_at DESC, sequence DESC LIMIT $2) f ON true`,
    [tenantId, limit],
  );
  return {
    count: BigInt(rows[0]?.n ?? "0"),
    recent: rows.flatMap((f) =>
      f.sequence === null ? [] : [{ sequence: BigInt(f.sequence), eventId: f.event_id!, reason: f.reason!, refusedAt: f.failed_at! }],
    ),
  };
}
