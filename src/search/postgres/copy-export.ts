// An NDJSON export from the system of record as bytes: PostgreSQL builds
// each line (ndjson-sql.ts) and streams the page with
// `COPY (SELECT ...) TO STDOUT`; Node finishes the lines in one pass over
// the bytes (copy-lines.ts) and passes them on. The same lines as
// ndjsonLineOfRecord of pgExport's records, in the same order and pages
// (keyset pages of `batchSize`, one page ahead, each its own short
// tenant-scoped read: see export.ts for why), without making a record of
// each row.
//
// A page is read whole before it is handed on, so a slow client never holds
// a statement open (its statement timeout would otherwise count the time
// the client takes to read). The few lines that copy-lines.ts names are
// written from their records, read in the same transaction (REPEATABLE
// READ, so the same version of the row).
import type { Pool, PoolClient } from "pg";
import type { EventQuery, SortDirection } from "../../domain/event-query.ts";
import { ndjsonLineOfRecord } from "../../domain/export-format.ts";
import type { PagePosition } from "../../domain/page-token.ts";
import { parseMicros } from "../../domain/timestamp.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../store/event-rows.ts";
import { withTenantRead } from "../../store/tenant-scope.ts";
import { PG_EXPORT_BATCH } from "./export.ts";
import { finishCopyLines } from "./copy-lines.ts";
import { copyOut } from "./copy-out.ts";
import { ndjsonLinesSql } from "./ndjson-sql.ts";
import { inlineParams, searchSql } from "./sql.ts";

const NEWLINE = 0x0a;

type Page = { bytes: Buffer; lines: number; last: PagePosition | null };

/** The position (occurred_at, sequence) of the line buf[start, end). */
function positionOf(buf: Buffer, start: number, end: number): PagePosition {
  const o = JSON.parse(buf.toString("utf8", start, end)) as { event: { occurredAt: string }; sequence: string };
  return { occurredAt: parseMicros(o.event.occurredAt), sequence: BigInt(o.sequence) };
}

/** `buf` with the lines at `redo` written from their records (ndjsonLineOfRecord). */
async function rewriteLines(db: PoolClient, tenantId: string, buf: Buffer, redo: [number, number][]): Promise<Buffer> {
  const sequences = redo.map(([start, end]) => positionOf(buf, start, end).sequence.toString());
  const rows = await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND sequence = ANY($2::bigint[])`, [
    tenantId,
    sequences,
  ]);
  const lines = new Map(rows.rows.map((r) => [r.sequence, ndjsonLineOfRecord(recordFromRow(r))]));
  const parts: Buffer[] = [];
  let at = 0;
  redo.forEach(([start, end], i) => {
    const line = lines.get(sequences[i]!);
    if (line === undefined) throw new Error(`event ${sequences[i]} of the page was not found again`);
    parts.push(buf.subarray(at, start), Buffer.from(line));
    at = end;
  });
  parts.push(buf.subarray(at));
  return Buffer.concat(parts);
}

export async function* pgExportNdjson(
  pool: Pool,
  tenantId: string,
  q: EventQuery,
  direction: SortDirection,
  limit: bigint | null,
  signal: AbortSignal,
  opts: { batchSize?: number; pageTimeoutMs?: number } = {},
): AsyncGenerator<Buffer, void, undefined> {
  const batchSize = opts.batchSize ?? PG_EXPORT_BATCH;
  let capacity = 0; // the previous page's size: the next is likely alike
  const sizeFor = (remaining: bigint | null) => (remaining !== null && remaining < BigInt(batchSize) ? Number(remaining) : batchSize);
  const page = (size: number, after: PagePosition | null): Promise<Page> => {
    const sql = `COPY (${ndjsonLinesSql(inlineParams(searchSql(tenantId, q, direction, after, size, "events.*")))}) TO STDOUT WITH (FORMAT binary)`;
    return withTenantRead(
      pool,
      tenantId,
      async (db) => {
        let bytes = await copyOut(db, sql, capacity);
        capacity = bytes.length;
        const finished = finishCopyLines(bytes);
        bytes = bytes.subarray(0, finished.length);
        if (finished.redo.length) bytes = await rewriteLines(db, tenantId, bytes, finished.redo);
        const lastStart = bytes.length ? bytes.lastIndexOf(NEWLINE, bytes.length - 2) + 1 : 0;
        return { bytes, lines: finished.lines, last: bytes.length ? positionOf(bytes, lastStart, bytes.length) : null };
      },
      { signal, statementTimeoutMs: opts.pageTimeoutMs, actorId: q.actorId, snapshot: true },
    );
  };
  let remaining = limit;
  if (remaining !== null && remaining <= 0n) return;
  signal.throwIfAborted();
  // One page ahead, as pgExport: PostgreSQL builds the next page while this one is written.
  let next: Promise<Page> | null = page(sizeFor(remaining), null);
  let size = sizeFor(remaining);
  while (next) {
    const { bytes, lines, last } = await next;
    next = null;
    signal.throwIfAborted();
    if (lines === 0) return;
    if (remaining !== null) remaining -= BigInt(lines);
    if (lines === size && last && (remaining === null || remaining > 0n)) {
      size = sizeFor(remaining);
      next = page(size, last);
      next.catch(() => undefined); // awaited in the next round, or abandoned when the consumer stops
    }
    yield bytes;
  }
}
