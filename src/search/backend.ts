// What QueryService needs from a search backend. Elasticsearch serves it
// when configured; otherwise PostgreSQL does, with the same contract.
import type { StoredRecord } from "../domain/event-record.ts";
import type { EventQuery, SortDirection } from "../domain/event-query.ts";
import type { PagePosition } from "../domain/page-token.ts";
import type { Micros } from "../domain/timestamp.ts";

export type SearchPage = {
  records: StoredRecord[];
  /** null when not asked for. */
  total: bigint | null;
  totalIsLowerBound: boolean;
};

export type StatsInterval = "minute" | "hour" | "day" | "week" | "month";

export type Stats = {
  total: bigint;
  histogram: { start: Micros; count: bigint }[];
  /** In the order action, actor.id, target.type, severity, outcome. */
  top: { field: "action" | "actor.id" | "target.type" | "severity" | "outcome"; values: { value: string; count: bigint }[] }[];
};

export type IndexStatus = {
  backend: "elasticsearch" | "postgresql";
  committedPosition: bigint;
  indexedPosition: bigint;
  lagEvents: bigint;
  lagSeconds: number;
  lastReconcile: {
    finishedAt: Date;
    windowsChecked: bigint;
    windowsWithGaps: bigint;
    eventsRepaired: bigint;
    documentsRemoved: bigint;
  } | null;
  /**
   * Events the index refused for their content (index_failures), skipped by
   * the indexer; absent where nothing is ever refused (PostgreSQL search).
   */
  refusedDocuments?: bigint;
  /** The most recent refusals, newest first. */
  recentRefusals?: { sequence: bigint; eventId: string; reason: string; refusedAt: Date }[];
};

export interface SearchBackend {
  readonly name: "elasticsearch" | "postgresql";

  /** One page: `limit` records after `after` in the given order. Aborting `signal` stops the backend's work. */
  search(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    after: PagePosition | null,
    limit: number,
    withTotal: boolean,
    signal?: AbortSignal,
  ): Promise<SearchPage>;

  /** Every matching record, in order, in batches; memory bounded by one batch. */
  export(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    limit: bigint | null,
    signal: AbortSignal,
  ): AsyncIterable<StoredRecord[]>;

  /**
   * The NDJSON file of export()'s records as bytes: ndjsonLineOfRecord of
   * each, in the same order, in chunks that end at a line's end. Optional: a
   * backend that can produce the lines cheaper than from records (PostgreSQL
   * builds them in SQL); exports use export() where it is absent or answers
   * null (a query it serves no cheaper, export-routing.ts).
   * `reuseBuffers`: the caller is done with each chunk once it asks for the
   * next (it has copied or written it), so later chunks may be written into
   * the same memory.
   */
  exportNdjson?(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    limit: bigint | null,
    signal: AbortSignal,
    opts?: { reuseBuffers?: boolean },
  ): AsyncIterable<Uint8Array> | null;

  stats(tenantId: string, q: EventQuery, interval: StatsInterval, top: number, signal?: AbortSignal): Promise<Stats>;

  /** Resolves true once events up to `position` are searchable, false after `timeoutMs`; rejects with the reason when `signal` aborts. */
  waitForPosition(tenantId: string, position: bigint, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;

  indexStatus(tenantId: string): Promise<IndexStatus>;
}
