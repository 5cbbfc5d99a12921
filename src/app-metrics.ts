// The gauges and counters read at scrape time (src/platform/metrics.ts):
// what the group commit, the pools, the indexer and Elasticsearch already
// know, read when Prometheus asks, so none of it costs the hot path anything.
import type { Client } from "@elastic/elasticsearch";
import type pg from "pg";
import type { Metrics } from "./platform/metrics.ts";
import type { Indexer } from "./search/elasticsearch/indexer.ts";
import { indexLag } from "./store/index-progress.ts";

/** A scrape must not hang on a cluster that does not answer. */
const HEALTH_TIMEOUT_MS = 2_000;

export function registerPoolMetrics(metrics: Metrics, pools: { write: pg.Pool; read: pg.Pool }): void {
  const each = (read: (p: pg.Pool) => number) => () => Object.entries(pools).map(([pool, p]) => ({ labels: { pool }, value: read(p) }));
  metrics.gauge(
    "auditlog_pg_pool_connections",
    "PostgreSQL connections open, by pool (write: ingest, indexer, keys, admin; read: tenant reads).",
    ["pool"],
    each((p) => p.totalCount),
  );
  metrics.gauge(
    "auditlog_pg_pool_idle_connections",
    "PostgreSQL connections open and idle, by pool.",
    ["pool"],
    each((p) => p.idleCount),
  );
  metrics.gauge(
    "auditlog_pg_pool_waiting_requests",
    "Queries waiting for a connection, by pool.",
    ["pool"],
    each((p) => p.waitingCount),
  );
}

export function registerIngestMetrics(metrics: Metrics, committer: { readonly pendingEvents: number }): void {
  metrics.gauge(
    "auditlog_ingest_pending_events",
    "Events admitted to group commit and not yet committed (bounded by AUDITLOG_MAX_PENDING_EVENTS).",
    [],
    () => [{ value: committer.pendingEvents }],
  );
}

export function registerSearchMetrics(metrics: Metrics, opts: { pool: pg.Pool; indexer: Indexer; client: Client }): void {
  const { pool, indexer, client } = opts;
  // Read from PostgreSQL, so every replica reports the same lag, leader or not.
  let lag: Promise<Awaited<ReturnType<typeof indexLag>>> | null = null;
  const readLag = () => {
    // One query per scrape for the three gauges.
    lag ??= indexLag(pool).finally(() => setImmediate(() => (lag = null)));
    return lag;
  };
  metrics.gauge("auditlog_index_lag_events", "Committed events not yet in Elasticsearch, all tenants.", [], async () => [
    { value: Number((await readLag()).events) },
  ]);
  metrics.gauge(
    "auditlog_index_lag_seconds",
    "Age of the oldest committed event not yet in Elasticsearch (0: none waiting).",
    [],
    async () => [{ value: Math.max(0, (await readLag()).seconds ?? 0) }],
  );
  metrics.gauge("auditlog_index_tenants_behind", "Tenants with events not yet in Elasticsearch.", [], async () => [
    { value: Number((await readLag()).tenants) },
  ]);
  metrics.gauge("auditlog_indexer_leader", "1 while this replica holds the indexer lock.", [], () => [
    { value: indexer.isLeader() ? 1 : 0 },
  ]);
  metrics.gauge(
    "auditlog_indexer_problem_seconds",
    "How long indexing has failed without moving, as this replica's indexer saw it (0: moving; the error is in /healthz and the logs).",
    [],
    () => {
      const p = indexer.currentProblem();
      return [{ value: p ? (Date.now() - p.since.getTime()) / 1000 : 0 }];
    },
  );
  metrics.counterFrom(
    "auditlog_indexed_events_total",
    "Events this replica wrote to Elasticsearch (re-deliveries included).",
    () => indexer.getStats().eventsIndexed,
  );
  metrics.counterFrom(
    "auditlog_index_refused_events_total",
    "Events Elasticsearch refused for their content, recorded and skipped.",
    () => indexer.getStats().eventsRefused,
  );
  metrics.counterFrom(
    "auditlog_index_bulk_requests_total",
    "Bulk requests this replica sent to Elasticsearch.",
    () => indexer.getStats().bulkRequests,
  );

  let lastError = 0;
  metrics.gauge(
    "auditlog_elasticsearch_up",
    "1 when Elasticsearch answered cluster health during this scrape with green or yellow, else 0.",
    [],
    async () => {
      try {
        const health = await client.cluster.health({}, { requestTimeout: HEALTH_TIMEOUT_MS, maxRetries: 0 });
        if (health.status !== "red") return [{ value: 1 }];
      } catch {
        // Counted below, like a red cluster.
      }
      lastError = Date.now() / 1000;
      return [{ value: 0 }];
    },
  );
  metrics.gauge(
    "auditlog_elasticsearch_last_error_timestamp_seconds",
    "When a scrape's health check or the indexer last failed against Elasticsearch (Unix time; absent: never).",
    [],
    () => {
      // Still failing counts as failing now; the value stays once it recovers.
      if (indexer.currentProblem()) lastError = Date.now() / 1000;
      return lastError > 0 ? [{ value: lastError }] : [];
    },
  );
}
