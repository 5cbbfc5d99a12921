// Tenant-scoped reads of the system of record: one event and walks over the
// hash chain. Searching is the PostgreSQL search backend's
// (src/search/postgres/backend.ts).
import type { Pool, PoolClient } from "pg";
import type { StoredRecord } from "../domain/event-record.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "./event-rows.ts";
import { committedHead } from "./index-progress.ts";
import { chainAnchor } from "./retention-store.ts";
import { tenantReadQueries, withTenantRead } from "./tenant-scope.ts";

export type EventReaderOptions = {
  /** statement_timeout of each read statement; unset: the server's setting. */
  statementTimeoutMs?: number;
};

export class EventReader {
  private readonly pool: Pool;
  private readonly statementTimeoutMs: number | undefined;

  /** `pool`: the read pool, apart from the one ingest writes through. */
  constructor(pool: Pool, opts: EventReaderOptions = {}) {
    this.pool = pool;
    this.statementTimeoutMs = opts.statementTimeoutMs;
  }

  /** `actorId`: only if this actor's (a User's read; row-level security enforces it). */
  getEvent(tenantId: string, id: string, signal?: AbortSignal, actorId?: string): Promise<StoredRecord | null> {
    const statement = {
      text: `SELECT ${EVENT_COLUMNS} FROM events
         WHERE tenant_id = $1 AND (sequence, received_at) =
           (SELECT sequence, received_at FROM event_ids WHERE tenant_id = $1 AND event_id = $2)`,
      values: [tenantId, id],
    };
    return tenantReadQueries(this.pool, tenantId, [statement], { signal, statementTimeoutMs: this.statementTimeoutMs, actorId }).then(
      ([result]) => {
        const row = result!.rows[0] as EventRow | undefined;
        return row ? recordFromRow(row) : null;
      },
    );
  }

  /** The tenant's last committed sequence (0 before its first event). */
  head(tenantId: string, signal?: AbortSignal): Promise<bigint> {
    return withTenantRead(this.pool, tenantId, (db) => committedHead(db, tenantId), {
      signal,
      statementTimeoutMs: this.statementTimeoutMs,
    });
  }

  /**
   * Up to `limit` committed events after sequence `after`, in sequence order.
   * Sequences are assigned under the tenant's head lock in commit order, so
   * what one snapshot sees after a position is always a gap-free prefix.
   */
  readAfter(tenantId: string, after: bigint, limit: number, signal?: AbortSignal): Promise<StoredRecord[]> {
    return withTenantRead(
      this.pool,
      tenantId,
      async (db) => {
        const rows = await db.query<EventRow>(
          `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND sequence > $2 ORDER BY events.sequence LIMIT $3`,
          [tenantId, after.toString(), limit],
        );
        return rows.rows.map(recordFromRow);
      },
      { signal, statementTimeoutMs: this.statementTimeoutMs },
    );
  }

  /**
   * Walks the tenant's events from `from` to `to` (null: the head) in
   * sequence order, in pages, inside one snapshot. `start` is told the stored
   * hash just before `from` (null if that event is missing) and the head
   * sequence, and returns the visitor; a visitor returning false stops.
   */
  walkChain(
    tenantId: string,
    from: bigint,
    to: bigint | null,
    start: (prevHash: string | null, last: bigint, first?: bigint) => (r: StoredRecord) => boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    return withTenantRead(
      this.pool,
      tenantId,
      async (db) => {
        const headSequence = await committedHead(db, tenantId);
        const last = to === null || to > headSequence ? headSequence : to;
        // Retention removed the events up to the anchor (docs/HASH_CHAIN.md,
        // "After retention"): the walk starts after it, from its hash.
        const anchor = await chainAnchor(db, tenantId);
        let begin = from;
        let prevHash: string | null;
        if (anchor && from <= anchor.sequence + 1n) {
          begin = anchor.sequence + 1n;
          prevHash = anchor.hash;
        } else prevHash = from > 1n ? await hashAt(db, tenantId, from - 1n) : null;
        const visit = start(prevHash, last, begin);
        const pageSize = 5000n;
        for (let first = begin; first <= last; first += pageSize) {
          const end = first + pageSize - 1n < last ? first + pageSize - 1n : last;
          const rows = await db.query<EventRow>(
            `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND sequence BETWEEN $2 AND $3 ORDER BY events.sequence`,
            [tenantId, first.toString(), end.toString()],
          );
          for (const row of rows.rows) if (!visit(recordFromRow(row))) return;
        }
      },
      { snapshot: true, signal, statementTimeoutMs: this.statementTimeoutMs },
    );
  }
}

async function hashAt(db: PoolClient, tenantId: string, sequence: bigint): Promise<string | null> {
  const r = await db.query<{ hash: string }>("SELECT hash FROM events WHERE tenant_id = $1 AND sequence = $2 LIMIT 1", [
    tenantId,
    sequence.toString(),
  ]);
  return r.rows[0]?.hash ?? null;
}
