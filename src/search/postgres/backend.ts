// Search served by PostgreSQL, the system of record: used when no
// Elasticsearch is configured. Nothing lags behind, so every position is
// searchable at once. Export and stats plug in through the options like
// those of ElasticsearchSearchBackend.
import type { Pool } from "pg";
import type { StoredRecord } from "../../domain/event-record.ts";
import type { EventQuery, SortDirection } from "../../domain/event-query.ts";
import type { PagePosition } from "../../domain/page-token.ts";
import type { IndexStatus, SearchBackend, SearchPage, Stats, StatsInterval } from "../backend.ts";
import { EventReader } from "../../store/event-reader.ts";
import { withTenantRead } from "../../store/tenant-scope.ts";

export type PgBackendContext = {
  readonly pool: Pool;
  readonly reader: EventReader;
  /** statement_timeout of search and stats statements. */
  readonly statementTimeoutMs?: number;
  /** statement_timeout of each page of an export (an export as a whole may run as long as it needs). */
  readonly exportPageTimeoutMs?: number;
};

export type PostgresBackendOptions = {
  export?: (
    ctx: PgBackendContext,
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    limit: bigint | null,
    signal: AbortSignal,
  ) => AsyncIterable<StoredRecord[]>;
  stats?: (ctx: PgBackendContext, tenantId: string, q: EventQuery, interval: StatsInterval, top: number, signal?: AbortSignal) => Promise<Stats>;
  statementTimeoutMs?: number;
  exportPageTimeoutMs?: number;
};

export class PostgresSearchBackend implements SearchBackend, PgBackendContext {
  readonly name = "postgresql" as const;
  readonly pool: Pool;
  readonly reader: EventReader;
  readonly statementTimeoutMs: number | undefined;
  readonly exportPageTimeoutMs: number | undefined;
  private readonly opts: PostgresBackendOptions;

  /** `pool`: the read pool. */
  constructor(pool: Pool, opts: PostgresBackendOptions = {}) {
    this.pool = pool;
    this.statementTimeoutMs = opts.statementTimeoutMs;
    this.exportPageTimeoutMs = opts.exportPageTimeoutMs;
    this.reader = new EventReader(pool, { statementTimeoutMs: opts.statementTimeoutMs });
    this.opts = opts;
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
    const { records, total } = await this.reader.search(tenantId, q, direction, after, limit, withTotal, signal);
    return { records, total, totalIsLowerBound: false };
  }

  /** PostgreSQL is the system of record: a committed position is searchable. */
  waitForPosition(_tenantId: string, _position: bigint, _timeoutMs: number): Promise<boolean> {
    return Promise.resolve(true);
  }

  async indexStatus(tenantId: string): Promise<IndexStatus> {
    const head = await withTenantRead(this.pool, tenantId, (db) =>
      db.query<{ sequence: string }>("SELECT sequence FROM chain_heads WHERE tenant_id = $1", [tenantId]), { statementTimeoutMs: this.statementTimeoutMs });
    const committed = BigInt(head.rows[0]?.sequence ?? "0");
    return {
      backend: "postgresql",
      committedPosition: committed,
      indexedPosition: committed,
      lagEvents: 0n,
      lagSeconds: 0,
      lastReconcile: null,
    };
  }

  export(tenantId: string, q: EventQuery, direction: SortDirection, limit: bigint | null, signal: AbortSignal): AsyncIterable<StoredRecord[]> {
    if (!this.opts.export) throw new Error("not implemented here");
    return this.opts.export(this, tenantId, q, direction, limit, signal);
  }

  stats(tenantId: string, q: EventQuery, interval: StatsInterval, top: number, signal?: AbortSignal): Promise<Stats> {
    if (!this.opts.stats) return Promise.reject(new Error("not implemented here"));
    return this.opts.stats(this, tenantId, q, interval, top, signal);
  }
}
