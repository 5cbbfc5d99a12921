// Prometheus metrics (prom-client), one registry per app so that several
// apps in one process (tests) do not mix. The layers below the transport do
// not see prom-client: the store reports through plain callbacks (group
// commit's `observe`), and values that already exist elsewhere (pending
// events, pool sizes, index lag, indexer counters) are read when scraped.
//
// Labels are bounded: service and method come from the registered routes,
// code from the Connect codes, pool and result from fixed sets. No tenant,
// key or event labels: tenants are created at run time, so their number is
// not bounded by configuration.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { runtimeRegistry } from "./runtime-metrics.ts";

export type CommitOutcome = "ok" | "failed";
export type ReconcileOutcome = "clean" | "repaired" | "failed";

/** Commit latencies: group commit is milliseconds when idle, seconds when PostgreSQL struggles. */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

export class Metrics {
  readonly registry = new Registry();
  /** The process's own figures (runtime-metrics.ts), after the app's; null: the app's alone. */
  private readonly runtime: Registry | null;

  private readonly rpcRequests = new Counter({
    name: "auditlog_rpc_requests_total",
    help: "RPCs handled, by service, method and status code (code != ok: errors).",
    labelNames: ["service", "method", "code"] as const,
    registers: [this.registry],
  });
  private readonly rpcDuration = new Histogram({
    name: "auditlog_rpc_duration_seconds",
    help: "RPC duration from the first interceptor to the end of the response, by service, method and code.",
    labelNames: ["service", "method", "code"] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });
  private readonly commitBatch = new Histogram({
    name: "auditlog_ingest_batch_events",
    help: "Events per group-commit transaction.",
    buckets: BATCH_BUCKETS,
    registers: [this.registry],
  });
  private readonly commitSeconds = new Histogram({
    name: "auditlog_commit_duration_seconds",
    help: "Duration of one group-commit transaction, by result.",
    labelNames: ["result"] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });
  private readonly reconciled = new Counter({
    name: "auditlog_reconcile_tenants_total",
    help: "Tenants reconciled (PostgreSQL against Elasticsearch), by result: clean, repaired or failed.",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  private readonly repaired = new Counter({
    name: "auditlog_reconcile_events_repaired_total",
    help: "Events the reconciler re-indexed.",
    registers: [this.registry],
  });
  private readonly removed = new Counter({
    name: "auditlog_reconcile_documents_removed_total",
    help: "Documents the reconciler removed from Elasticsearch.",
    registers: [this.registry],
  });

  /** `runtime`: include the process's memory, GC, event loop and CPU (started now, once per process). */
  constructor(opts: { runtime?: boolean } = {}) {
    this.runtime = opts.runtime ? runtimeRegistry() : null;
  }

  /** One RPC's outcome (the transport's interceptor calls it). */
  observeRpc(service: string, method: string, code: string, seconds: number): void {
    const labels = { service, method, code };
    this.rpcRequests.inc(labels);
    this.rpcDuration.observe(labels, seconds);
  }

  /** One group-commit transaction (GroupCommitter's `observe`). */
  readonly observeCommit = (events: number, seconds: number, outcome: CommitOutcome): void => {
    this.commitBatch.observe(events);
    this.commitSeconds.observe({ result: outcome }, seconds);
  };

  /** One tenant's reconciliation. */
  readonly observeReconcile = (outcome: ReconcileOutcome, eventsRepaired = 0, documentsRemoved = 0): void => {
    this.reconciled.inc({ result: outcome });
    if (eventsRepaired > 0) this.repaired.inc(eventsRepaired);
    if (documentsRemoved > 0) this.removed.inc(documentsRemoved);
  };

  /**
   * A gauge whose values are read at scrape time; `read` returns one value
   * per label combination (keys as in `labelNames`). A failing read leaves
   * the gauge empty for that scrape rather than failing the whole scrape.
   */
  gauge<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: () =>
      | Promise<{ labels?: Partial<Record<L, string>>; value: number }[]>
      | { labels?: Partial<Record<L, string>>; value: number }[],
  ): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        this.reset();
        let values: { labels?: Partial<Record<L, string>>; value: number }[];
        try {
          values = await read();
        } catch {
          return;
        }
        for (const v of values) {
          if (v.labels) this.set(v.labels as Record<L, string>, v.value);
          else this.set(v.value);
        }
      },
    });
  }

  /** A counter kept elsewhere (e.g. the indexer's totals), read at scrape time. */
  counterFrom(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  /** The exposition text and its content type, for GET /metrics. */
  async render(): Promise<{ contentType: string; body: string }> {
    const [own, runtime] = await Promise.all([this.registry.metrics(), this.runtime?.metrics() ?? ""]);
    // Each text ends with a newline; a blank line between metric families, as within one registry.
    return { contentType: this.registry.contentType, body: runtime ? `${own}\n${runtime}` : own };
  }
}
