// Export from the system of record: every matching event in order, in keyset
// pages of `batchSize` (the order and page condition of searchSql). Each page
// is its own short tenant-scoped read (row-level security, read-only
// transaction), so an export of millions of rows holds no transaction,
// snapshot or connection between pages and memory is bounded by one page.
//
// Because pages are separate reads, an export is not one snapshot: an event
// committed during the export appears if it sorts after the page being read
// (never twice, never out of order); one that sorts before it does not.
import type { Pool } from "pg";
import type { EventQuery, SortDirection } from "../domain/event-query.ts";
import type { StoredRecord } from "../domain/event-record.ts";
import type { PagePosition } from "../domain/page-token.ts";
import { formatMicros } from "../domain/timestamp.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "./event-rows.ts";
import { type Sql, whereClause } from "./search-sql.ts";
import { withTenantRead } from "./tenant-scope.ts";

export const PG_EXPORT_BATCH = 2000;

/**
 * One keyset page: like searchSql, but ORDER BY names the table's columns
 * explicitly. EVENT_COLUMNS outputs occurred_at as text under the same name,
 * and a bare ORDER BY occurred_at would sort by that text (correct order, but
 * no index: every page a full sort of the tenant's matching rows). Qualified,
 * each page is a range scan of (tenant_id, occurred_at, sequence).
 */
export function exportPageSql(tenantId: string, q: EventQuery, direction: SortDirection, after: PagePosition | null, limit: number): Sql {
  const where = whereClause(tenantId, q);
  const values = [...where.values];
  let text = where.text;
  if (after) {
    values.push(formatMicros(after.occurredAt), after.sequence.toString());
    const op = direction === "asc" ? ">" : "<";
    text += ` AND (occurred_at, sequence) ${op} ($${values.length - 1}::timestamptz, $${values.length}::bigint)`;
  }
  values.push(limit);
  const dir = direction === "asc" ? "ASC" : "DESC";
  return {
    text: `SELECT ${EVENT_COLUMNS} FROM events WHERE ${text} ORDER BY events.occurred_at ${dir}, events.sequence ${dir} LIMIT $${values.length}`,
    values,
  };
}

export async function* pgExport(
  pool: Pool,
  tenantId: string,
  q: EventQuery,
  direction: SortDirection,
  limit: bigint | null,
  signal: AbortSignal,
  opts: { batchSize?: number } = {},
): AsyncGenerator<StoredRecord[], void, undefined> {
  const batchSize = opts.batchSize ?? PG_EXPORT_BATCH;
  let remaining = limit;
  let after: PagePosition | null = null;
  while (remaining === null || remaining > 0n) {
    signal.throwIfAborted();
    const size = remaining !== null && remaining < BigInt(batchSize) ? Number(remaining) : batchSize;
    const page = exportPageSql(tenantId, q, direction, after, size);
    const rows = await withTenantRead(pool, tenantId, async (db) => (await db.query<EventRow>(page.text, page.values)).rows);
    if (rows.length === 0) return;
    const records = rows.map(recordFromRow);
    const last = records[records.length - 1]!;
    after = { occurredAt: last.occurredAt, sequence: last.sequence };
    if (remaining !== null) remaining -= BigInt(records.length);
    signal.throwIfAborted();
    yield records;
    if (rows.length < size) return;
  }
}
