// Search served by Elasticsearch: one page per request, sorted by
// (occurred_at, sequence) with search_after, always filtered and routed by
// tenant. Export and stats have files of their own (export.ts, stats.ts);
// positions and index status come from PostgreSQL, where the indexer
// records them.
import type { Client, estypes } from "@elastic/elasticsearch";
import type { Pool } from "pg";
import type { StoredRecord } from "../../domain/event-record.ts";
import type { EventQuery, SortDirection } from "../../domain/event-query.ts";
import type { PagePosition } from "../../domain/page-token.ts";
import { indexedPosition } from "../../store/index-progress.ts";
import type { IndexStatus, SearchBackend, SearchPage, Stats, StatsInterval } from "../backend.ts";
import { type EventDocument, recordFromDocument } from "./event-document.ts";
import { esExport } from "./export.ts";
import { readIndexStatus } from "./index-status.ts";
import { READ_ALIAS } from "./index-template.ts";
import { esQuery, esSearchAfter, esSort } from "./query.ts";
import { esStats } from "./stats.ts";

export type ElasticsearchBackendOptions = {
  /** The alias (or index pattern) searched, exported and counted; default READ_ALIAS. */
  readAlias?: string;
  /** Totals above this are reported as a lower bound (track_total_hits). Default 10,000. */
  totalHitsLimit?: number;
  /** How often waitForPosition looks at index_progress. Default 25 ms. */
  pollIntervalMs?: number;
};

import { setTimeout as sleep } from "node:timers/promises";

export class ElasticsearchSearchBackend implements SearchBackend {
  readonly name = "elasticsearch" as const;
  private readonly client: Client;
  private readonly pool: Pool;
  private readonly readAlias: string;
  private readonly opts: ElasticsearchBackendOptions;

  /** `pool`: the read pool (index_progress, GetIndexStatus). */
  constructor(client: Client, pool: Pool, opts: ElasticsearchBackendOptions = {}) {
    this.client = client;
    this.pool = pool;
    this.readAlias = opts.readAlias ?? READ_ALIAS;
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
    const searchAfter = after ? esSearchAfter(after, direction) : "start";
    const end = searchAfter === "end";
    const res = await this.client.search<EventDocument>(
      {
        index: this.readAlias,
        routing: tenantId,
        // Before the first event is indexed there is no index behind the alias yet.
        ignore_unavailable: true,
        allow_no_indices: true,
        query: esQuery(tenantId, q),
        sort: esSort(direction),
        size: end ? 0 : limit,
        ...(typeof searchAfter === "object" ? { search_after: searchAfter } : {}),
        track_total_hits: withTotal ? (this.opts.totalHitsLimit ?? 10_000) : false,
        // Derived search fields that a StoredRecord does not carry.
        _source_excludes: ["open_text", "id_hash"],
      },
      { signal },
    );
    const records = res.hits.hits.map((h) => {
      const r = recordFromDocument(h._source!);
      // The query filters by tenant; this is the last line of defence.
      if (r.tenantId !== tenantId) throw new Error(`search for tenant ${tenantId} returned a document of another tenant`);
      if (q.actorId !== undefined && r.actor.id !== q.actorId) throw new Error("a User's search returned another actor's event");
      return r;
    });
    const total = res.hits.total as estypes.SearchTotalHits | undefined;
    return {
      records,
      total: withTotal ? BigInt(total?.value ?? 0) : null,
      totalIsLowerBound: withTotal && total?.relation === "gte",
    };
  }

  /** Polls index_progress, which the indexer advances only once a bulk request with refresh=wait_for has returned. */
  async waitForPosition(tenantId: string, position: bigint, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    const interval = this.opts.pollIntervalMs ?? 25;
    for (;;) {
      signal?.throwIfAborted();
      if ((await this.indexedPosition(tenantId)) >= position) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      // Rejects with the signal's reason: a caller whose deadline passed stops polling.
      await sleep(Math.min(interval, left), undefined, { signal });
    }
  }

  /** The tenant's highest searchable sequence (0 before anything was indexed). */
  indexedPosition(tenantId: string): Promise<bigint> {
    return indexedPosition(this.pool, tenantId);
  }

  export(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    limit: bigint | null,
    signal: AbortSignal,
  ): AsyncIterable<StoredRecord[]> {
    return esExport(this.client, tenantId, q, direction, limit, signal, { alias: this.readAlias });
  }

  stats(tenantId: string, q: EventQuery, interval: StatsInterval, top: number, signal?: AbortSignal): Promise<Stats> {
    return esStats(this.client, tenantId, q, interval, top, { alias: this.readAlias, signal });
  }

  indexStatus(tenantId: string): Promise<IndexStatus> {
    return readIndexStatus(this.pool, tenantId);
  }
}
