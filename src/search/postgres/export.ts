// Export from the system of record: every matching event in order, in keyset
// pages of `batchSize` (the order and page condition of searchSql). Each page
// is its own short tenant-scoped read (row-level security, read-only
// transaction), so an export of millions of rows holds no transaction or
// snapshot between pages, and memory is bounded by two pages (the next one
// is read while the consumer works through this one).
//
// `pageTimeoutMs` bounds each page's statement, not the export: a long
// export of cheap pages goes on, one page that scans too long stops it.
//
// Because pages are separate reads, an export is not one snapshot: an event
// committed during the export appears if it sorts after the page being read
// (never twice, never out of order); one that sorts before it does not.
import type { Pool } from "pg";
import type { EventQuery, SortDirection } from "../../domain/event-query.ts";
import type { StoredRecord } from "../../domain/event-record.ts";
import type { PagePosition } from "../../domain/page-token.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../store/event-rows.ts";
import { searchSql } from "./sql.ts";
import { withTenantRead } from "../../store/tenant-scope.ts";

export const PG_EXPORT_BATCH = 2000;

export async function* pgExport(
  pool: Pool,
  tenantId: string,
  q: EventQuery,
  direction: SortDirection,
  limit: bigint | null,
  signal: AbortSignal,
  opts: { batchSize?: number; pageTimeoutMs?: number } = {},
): AsyncGenerator<StoredRecord[], void, undefined> {
  const batchSize = opts.batchSize ?? PG_EXPORT_BATCH;
  const sizeFor = (remaining: bigint | null) => (remaining !== null && remaining < BigInt(batchSize) ? Number(remaining) : batchSize);
  const page = async (size: number, after: PagePosition | null) => {
    const sql = searchSql(tenantId, q, direction, after, size, EVENT_COLUMNS);
    const rows = await withTenantRead(pool, tenantId, async (db) => (await db.query<EventRow>(sql.text, sql.values)).rows, {
      signal,
      statementTimeoutMs: opts.pageTimeoutMs,
      actorId: q.actorId,
    });
    return { records: rows.map(recordFromRow), size };
  };
  let remaining = limit;
  if (remaining !== null && remaining <= 0n) return;
  signal.throwIfAborted();
  // One page ahead: PostgreSQL reads the next page while the consumer
  // formats and writes this one. At most two pages in memory, one connection.
  let next: ReturnType<typeof page> | null = page(sizeFor(remaining), null);
  while (next) {
    const { records, size } = await next;
    next = null;
    signal.throwIfAborted();
    if (records.length === 0) return;
    if (remaining !== null) remaining -= BigInt(records.length);
    if (records.length === size && (remaining === null || remaining > 0n)) {
      const last = records[records.length - 1]!;
      next = page(sizeFor(remaining), { occurredAt: last.occurredAt, sequence: last.sequence });
      next.catch(() => undefined); // awaited in the next round, or abandoned when the consumer stops
    }
    yield records;
  }
}
