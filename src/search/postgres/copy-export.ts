// An NDJSON export from the system of record as bytes: PostgreSQL builds
// each line (ndjson-sql.ts) and streams the page with
// `COPY (SELECT ...) TO STDOUT`; Node finishes the lines in one pass over
// the bytes (copy-lines.ts) and passes them on. The same lines as
// ndjsonLineOfRecord of pgExport's records, in the same order (pages of
// `batchSize`, each its own short tenant-scoped read: see export.ts for
// why), without making a record of each row. Two pages are built at once on
// two connections: each page's end is found first from the page-order
// index (cheap), and the pages are ranges of the order between those ends.
//
// With `reuseBuffers` (a consumer that is done with each page once it asks
// for the next), later pages are read into the memory of earlier ones
// (page-buffers.ts).
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
import { tenantReadQueries, withTenantRead } from "../../store/tenant-scope.ts";
import { PG_EXPORT_BATCH } from "./export.ts";
import { finishCopyLines } from "./copy-lines.ts";
import { copyOut } from "./copy-out.ts";
import { PageBuffers } from "./page-buffers.ts";
import { ndjsonLinesSql } from "./ndjson-sql.ts";
import { searchSql } from "./sql.ts";
import { inlineParams } from "../../store/sql-literal.ts";

const NEWLINE = 0x0a;

type Page = { bytes: Buffer; lines: number };

/** Pages built at once, each on a connection of its own: PostgreSQL building the lines is what bounds an export. */
const PAGES_AT_ONCE = 2;

/** The position (occurred_at, sequence) of the line buf[start, end). */
function positionOf(buf: Buffer, start: number, end: number): PagePosition {
  const o = JSON.parse(buf.toString("utf8", start, end)) as { event: { occurredAt: string }; sequence: string };
  return { occurredAt: parseMicros(o.event.occurredAt), sequence: BigInt(o.sequence) };
}

/** `parts` one after the other in one buffer (from `buffers` when given). */
function joined(parts: readonly Uint8Array[], buffers: PageBuffers | undefined): Buffer {
  if (!buffers) return Buffer.concat(parts);
  let size = 0;
  for (const p of parts) size += p.length;
  const out = buffers.take(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out.subarray(0, size);
}

/** `buf` with the lines at `redo` written from their records (ndjsonLineOfRecord), in a new buffer. */
async function rewriteLines(
  db: PoolClient,
  tenantId: string,
  buf: Buffer,
  redo: [number, number][],
  buffers: PageBuffers | undefined,
): Promise<Buffer> {
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
  return joined(parts, buffers);
}

/** The bytes of the first `n` lines of `buf`. */
function firstLines(buf: Buffer, n: number): Buffer {
  let end = 0;
  for (let i = 0; i < n; i++) end = buf.indexOf(NEWLINE, end) + 1;
  return buf.subarray(0, end);
}

export async function* pgExportNdjson(
  pool: Pool,
  tenantId: string,
  q: EventQuery,
  direction: SortDirection,
  limit: bigint | null,
  signal: AbortSignal,
  opts: { batchSize?: number; pageTimeoutMs?: number; reuseBuffers?: boolean } = {},
): AsyncGenerator<Buffer, void, undefined> {
  const batchSize = opts.batchSize ?? PG_EXPORT_BATCH;
  // In use: the pages being built and the one being consumed, which is free
  // again before the next page is planned; so few are ever free at once.
  const buffers = opts.reuseBuffers ? new PageBuffers(2) : undefined;
  let capacity = 0; // the previous page's size: the next is likely alike
  const readOptions = (snapshot: boolean) => ({ signal, statementTimeoutMs: opts.pageTimeoutMs, actorId: q.actorId, snapshot });
  const read = <T>(fn: (db: PoolClient) => Promise<T>) => withTenantRead(pool, tenantId, fn, readOptions(true));
  // The lines of at most `size` events after `after` (and up to `until`).
  const lines = async (db: PoolClient, after: PagePosition | null, until: PagePosition | null, size: number): Promise<Page> => {
    const sql = `COPY (${ndjsonLinesSql(inlineParams(searchSql(tenantId, q, direction, after, size, "events.*", until)))}) TO STDOUT WITH (FORMAT binary)`;
    let bytes = await copyOut(db, sql, capacity, buffers);
    capacity = bytes.length;
    const finished = finishCopyLines(bytes);
    bytes = bytes.subarray(0, finished.length);
    if (finished.redo.length) {
      const rewritten = await rewriteLines(db, tenantId, bytes, finished.redo, buffers);
      buffers?.give(bytes);
      bytes = rewritten;
    }
    return { bytes, lines: finished.lines };
  };
  // The lines of every event in (after, until] (`until` null: to the end of
  // the order), or of the first `size` after `after` when not `whole`. A
  // range is read `size` events at a time (a LIMIT near the page's size
  // keeps PostgreSQL on the index in order; it cannot estimate a range of
  // the order): more than that only when events were committed into it
  // since its end was found, read on in the same snapshot.
  const page = (after: PagePosition | null, until: PagePosition | null, size: number, whole: boolean): Promise<Page> =>
    read(async (db) => {
      // One more than the page should hold: a full read says there may be more.
      const cap = whole ? size + 1 : size;
      const first = await lines(db, after, until, cap);
      if (!whole || first.lines < cap) return first;
      const parts = [first.bytes];
      let total = first.lines;
      for (let more = first; more.lines === cap; ) {
        const last = more.bytes.lastIndexOf(NEWLINE, more.bytes.length - 2) + 1;
        more = await lines(db, positionOf(more.bytes, last, more.bytes.length), until, cap);
        parts.push(more.bytes);
        total += more.lines;
      }
      const bytes = joined(parts, buffers);
      for (const part of parts) buffers?.give(part);
      return { bytes, lines: total };
    });
  // Where the page of `size` events after `after` ends (the position of its
  // last event), or null when fewer follow: the order's columns only, which
  // the page-order index holds, so far cheaper than building the page.
  const pageEnd = async (after: PagePosition | null, size: number): Promise<PagePosition | null> => {
    const s = searchSql(tenantId, q, direction, after, size, "events.occurred_at, events.sequence");
    const text = `SELECT (extract(epoch FROM p.occurred_at) * 1000000)::bigint::text AS micros, p.sequence::text AS sequence FROM (${s.text}) p OFFSET ${size - 1}`;
    const [result] = await tenantReadQueries(pool, tenantId, [{ text, values: s.values }], readOptions(false));
    const row = result!.rows[0] as { micros: string; sequence: string } | undefined;
    return row ? { occurredAt: BigInt(row.micros), sequence: BigInt(row.sequence) } : null;
  };

  // Pages are planned ahead: each one's end is found first, so the next can
  // be built at the same time on another connection. They tile the order
  // exactly, (start, end] then (end, next end], so events committed into a
  // range between finding its end and reading it are exported with it, and
  // nothing after them is skipped (what is committed after a page's
  // snapshot is not in it, as with pages read one after another); the last
  // page is all that follows its start (at most `size` of it with a limit).
  let remaining = limit;
  if (remaining !== null && remaining <= 0n) return;
  signal.throwIfAborted();
  let start: PagePosition | null = null;
  let unplanned = limit; // events no planned page covers yet (null: all)
  let planning = true;
  const planned: Promise<Page>[] = [];
  const planNext = async () => {
    const size = unplanned !== null && unplanned < BigInt(batchSize) ? Number(unplanned) : batchSize;
    const end = await pageEnd(start, size);
    // The last page: all that follows its start, or at most `size` of it with a limit.
    const p = page(start, end, size, end !== null || limit === null);
    p.catch(() => undefined); // awaited in turn, or abandoned when the consumer stops
    planned.push(p);
    if (unplanned !== null) unplanned -= BigInt(size);
    start = end;
    planning = end !== null && (unplanned === null || unplanned > 0n);
  };
  while (planning || planned.length) {
    while (planning && planned.length < PAGES_AT_ONCE) await planNext();
    const { bytes, lines } = await planned.shift()!;
    signal.throwIfAborted();
    if (remaining === null || BigInt(lines) <= remaining) {
      if (lines > 0) yield bytes;
      if (remaining !== null) remaining -= BigInt(lines);
    } else {
      yield firstLines(bytes, Number(remaining));
      remaining = 0n;
    }
    // The consumer asked for more, so it is done with this page.
    buffers?.give(bytes);
    if (remaining === 0n) return;
  }
}
