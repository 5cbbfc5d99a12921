// The Elasticsearch side of the wiring (app.ts): the client, the backend,
// the indexer, its health monitor and the reconciler. app.ts loads this
// module only when Elasticsearch is configured, so the service without it
// never loads the client (docs/PERFORMANCE.md, "Round two: memory").
import { Client } from "@elastic/elasticsearch";
import type pg from "pg";
import { QueryService } from "../gen/auditlog/v1/query_pb.js";
import { registerSearchMetrics } from "./app-metrics.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./platform/log.ts";
import type { Metrics } from "./platform/metrics.ts";
import type { SearchBackend } from "./search/backend.ts";
import { ElasticsearchSearchBackend } from "./search/elasticsearch/backend.ts";
import { IndexHealthMonitor } from "./search/elasticsearch/index-health.ts";
import { indexNames } from "./search/elasticsearch/index-names.ts";
import { Indexer } from "./search/elasticsearch/indexer.ts";
import { Reconciler } from "./search/elasticsearch/reconciler.ts";
import { ElasticsearchLifecycle } from "./search/elasticsearch/retention-documents.ts";
import { deleteTenantDocuments } from "./search/elasticsearch/tenant-documents.ts";
import { withExportsFromRecords } from "./search/export-routing.ts";
import type { SearchLifecycle } from "./search/lifecycle.ts";
import type { HealthState } from "./server/health.ts";

export type SearchSide = {
  backend: SearchBackend;
  indexer: Indexer | null;
  reconciler: Reconciler | null;
  /** Removes a deleted tenant's documents from the index (none without Elasticsearch). */
  deleteTenantDocuments?: (tenantId: string) => Promise<number>;
  /** Retention and erasure in the index (none without Elasticsearch). */
  lifecycle?: SearchLifecycle;
  close(): Promise<void>;
};

/**
 * An indexer follows the commits and a reconciler checks the index against
 * PostgreSQL. An unreachable Elasticsearch never stops the service from
 * starting or ingesting: the indexer retries.
 */
export function startElasticsearchSearch(
  config: Config & { elasticsearchUrl: string },
  pool: pg.Pool,
  readPool: pg.Pool,
  records: SearchBackend,
  log: Logger,
  health: HealthState,
  metrics: Metrics,
): SearchSide {
  // The indexer installs the index template whenever it takes the lead.
  const client = new Client({ node: config.elasticsearchUrl, requestTimeout: 30_000, maxRetries: 2 });
  const esLog = log.child({ component: "search" });
  const prefix = config.elasticsearchIndexPrefix;
  const backend = withExportsFromRecords(
    new ElasticsearchSearchBackend(client, readPool, { readAlias: indexNames(prefix).alias }),
    records,
  );
  const indexer = new Indexer({ pool, client, log: esLog.child({ component: "indexer" }), prefix });
  indexer.start();
  // Only QueryService depends on the index; ingest and admin stay SERVING.
  const indexHealth = new IndexHealthMonitor({
    pool,
    log: esLog,
    indexer,
    stallMs: config.indexStallMs,
    report: ({ stuck, reason, refusalWarning }) => {
      health.set(QueryService.typeName, stuck ? "NOT_SERVING" : "SERVING", reason ?? undefined);
      health.warn("index-refusals", refusalWarning);
    },
  });
  indexHealth.start();
  const reconciler = new Reconciler({
    pool,
    client,
    log: esLog.child({ component: "reconciler" }),
    prefix,
    onResult: metrics.observeReconcile,
  });
  registerSearchMetrics(metrics, { pool, indexer, client });
  if (config.reconcileIntervalMs > 0) reconciler.runPeriodically(config.reconcileIntervalMs);
  return {
    backend,
    indexer,
    reconciler,
    deleteTenantDocuments: (tenantId) => deleteTenantDocuments(client, indexNames(prefix).alias, tenantId),
    lifecycle: new ElasticsearchLifecycle(client, prefix),
    async close() {
      await indexHealth.stop();
      await reconciler.stop();
      await indexer.stop();
      await client.close();
    },
  };
}
