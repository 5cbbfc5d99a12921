// Search served by PostgreSQL, the system of record: used when no
// Elasticsearch is configured. Nothing lags behind, so every position is
// searchable at once.
import type { Pool } from "pg";
import type { StoredRecord } from "../../domain/event-record.ts";
import type { EventQuery, SortDirection } from "../../domain/event-query.ts";
import type { PagePosition } from "../../domain/page-token.ts";
import type { IndexStatus, SearchBackend, SearchPage, Stats, StatsInterval } from "../backend.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../store/event-rows.ts";
import { committedHead } from "../../store/index-progress.ts";
import { tenantReadQueries, withTenantRead } from "../../store/tenant-scope.ts";
import { pgExportNdjson } from "./copy-export.ts";
import { pgExport } from "./export.ts";
import { countSql, searchSql } from "./sql.ts";
import { pgStats } from "./stats.ts";

export type PostgresBackendOptions = {
  /** statement_timeout of search and stats statements; unset: the server's setting. */
  statementTimeoutMs?: number;
  /** statement_timeout of each page of an export (an export as a whole may run as long as it needs). */
  exportPageTimeoutMs?: number;
};

export class PostgresSearchBackend implements SearchBackend {
  readonly name = "postgresql" as const;
  private readonly pool: Pool;
  private readonly statementTimeoutMs: number | undefined;
  private readonly exportPageTimeoutMs: number | undefined;

  /** `pool`: the read pool, apart from the one ingest writes through. */
  constructor(pool: Pool, opts: PostgresBackendOptions = {}) {
    this.pool = pool;
    this.statementTimeoutMs = opts.statementTimeoutMs;
    this.exportPageTimeoutMs = opts.exportPageTimeoutMs;
  }

  async search(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    after: PagePosition | null,
    limit: number,
    withTotal: boolean,
    signal?: AbortSignal,
  ): Promise<SearchPage> {
    const page = searchSql(tenantId, q, direction, after, limit, EVENT_COLUMNS);
    const statements = withTotal ? [page, countSql(tenantId, q)] : [page];
    // One round trip: the read's setup, the page (and the count) and COMMIT.
    // Row-level security holds a User's read to their own events, whatever the SQL says.
    const [rows, count] = await tenantReadQueries(this.pool, tenantId, statements, {
      signal,
      statementTimeoutMs: this.statementTimeoutMs,
      actorId: q.actorId,
    });
    return {
      records: (rows!.rows as EventRow[]).map(recordFromRow),
      total: count ? BigInt((count.rows[0] as { n: string }).n) : null,
      totalIsLowerBound: false,
    };
  }

  /** PostgreSQL is the system of record: a committed position is searchable. */
  waitForPosition(_tenantId: string, _position: bigint, _timeoutMs: number): Promise<boolean> {
    return Promise.resolve(true);
  }

  async indexStatus(tenantId: string): Promise<IndexStatus> {
    const committed = await withTenantRead(this.pool, tenantId, (db) => committedHead(db, tenantId), {
      statementTimeoutMs: this.statementTimeoutMs,
    });
    return {
      backend: "postgresql",
      committedPosition: committed,
      indexedPosition: committed,
      lagEvents: 0n,
      lagSeconds: 0,
      lastReconcile: null,
    };
  }

  export(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    limit: bigint | null,
    signal: AbortSignal,
  ): AsyncIterable<StoredRecord[]> {
    return pgExport(this.pool, tenantId, q, direction, limit, signal, { pageTimeoutMs: this.exportPageTimeoutMs });
  }

  /** Lines built by PostgreSQL and streamed with COPY (copy-export.ts). */
  exportNdjson(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    limit: bigint | null,
    signal: AbortSignal,
    opts: { reuseBuffers?: boolean } = {},
  ): AsyncIterable<Uint8Array> {
    return pgExportNdjson(this.pool, tenantId, q, direction, limit, signal, { pageTimeoutMs: this.exportPageTimeoutMs, ...opts });
  }

  stats(tenantId: string, q: EventQuery, interval: StatsInterval, top: number, signal?: AbortSignal): Promise<Stats> {
    return pgStats(this.pool, tenantId, q, interval, top, { signal, statementTimeoutMs: this.statementTimeoutMs });
  }
}
