// Search index health: reports indexing as stuck (with a reason) while it
// is, and as moving again when it moves; src/app.ts turns that into
// QueryService NOT_SERVING / SERVING.
//
// "Stuck" is read from PostgreSQL, not from this replica's indexer, so every
// replica agrees whether or not it leads (and it also catches the case
// where no replica leads): some tenant has events waiting, the oldest of
// them arrived more than `stallMs` ago, and its index progress has not moved
// for `stallMs` either. A large backlog that is being worked off is not
// stuck. The leader's view of the last error goes into the reason.
//
// Only QueryService depends on the index (search, export and stats;
// GetEvent and VerifyChain read PostgreSQL and keep working). Ingest and
// admin never wait for Elasticsearch, and the whole server ("") stays
// SERVING: a load balancer that pulled replicas for a stuck index would stop
// ingest too, which is exactly what the index must never do.
//
// Refused documents (index_failures) stop nothing: a tenant choosing to send
// an unindexable event must not be able to flip health for every tenant. They
// show as a warning (a count, no tenant or event ids: /healthz is
// unauthenticated); GetIndexStatus gives each tenant its own.
import type { Pool } from "pg";
import type { Logger } from "../../platform/log.ts";
import { stalledIndexing } from "../../store/index-progress.ts";
import type { Indexer } from "./indexer.ts";

/** How far back refusals count for the warning. */
const REFUSAL_WARNING_HOURS = 24;

/** What each look reports (to the health state, in src/app.ts). */
export type IndexHealthReport = {
  /** Search depends on an index that has not moved for stallMs. */
  stuck: boolean;
  /** Why, while stuck. */
  reason: string | null;
  /** A warning about recently refused documents, null when there are none. */
  refusalWarning: string | null;
};

export type IndexHealthOptions = {
  pool: Pool;
  /** Told the result of every successful look. */
  report: (r: IndexHealthReport) => void;
  log: Logger;
  /** This replica's indexer, for the reason text (its last error while leading). */
  indexer?: Indexer | null;
  /** Waiting work with no progress for this long is stuck. */
  stallMs: number;
  /** How often to look. Default stallMs / 4, between 250 ms and 5 s. */
  intervalMs?: number;
};

export type IndexHealth = {
  stuck: boolean;
  reason: string | null;
  /** Tenants with waiting events and no progress for stallMs. */
  stalledTenants: number;
  stalledEvents: bigint;
  /** Events refused for their content in the last REFUSAL_WARNING_HOURS, all tenants. */
  recentRefusals: number;
};

export class IndexHealthMonitor {
  private readonly opts: IndexHealthOptions;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stuck = false;

  constructor(opts: IndexHealthOptions) {
    this.opts = opts;
    this.log = opts.log.child({ component: "index-health" });
    this.intervalMs = opts.intervalMs ?? Math.max(250, Math.min(5000, Math.round(opts.stallMs / 4)));
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.running = this.update()
        .then(() => undefined)
        .finally(() => {
          this.running = null;
          if (this.timer) this.timer = setTimeout(tick, this.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Looks once and applies the result to the health state. */
  async update(): Promise<IndexHealth | null> {
    let h: IndexHealth;
    try {
      h = await this.check();
    } catch (err) {
      // PostgreSQL trouble is not an index problem (and shows everywhere else).
      this.log.debug("index health check failed", { err: (err as Error).message });
      return null;
    }
    this.opts.report({
      stuck: h.stuck,
      reason: h.reason,
      refusalWarning:
        h.recentRefusals > 0
          ? `search index: ${h.recentRefusals} events refused for their content in the last ${REFUSAL_WARNING_HOURS} h; they are stored but not searchable (GetIndexStatus lists a tenant's)`
          : null,
    });
    if (h.stuck !== this.stuck) {
      if (h.stuck) this.log.error("search indexing is stuck; QueryService reports NOT_SERVING", { reason: h.reason });
      else this.log.info("search indexing moves again; QueryService reports SERVING");
      this.stuck = h.stuck;
    }
    return h;
  }

  async check(): Promise<IndexHealth> {
    const r = await stalledIndexing(this.opts.pool, this.opts.stallMs / 1000, REFUSAL_WARNING_HOURS);
    const stalledTenants = Number(r.tenants);
    const stalledEvents = BigInt(r.events);
    const recentRefusals = Number(r.refused);
    if (stalledTenants === 0) return { stuck: false, reason: null, stalledTenants, stalledEvents, recentRefusals };
    const problem = this.opts.indexer?.currentProblem();
    const reason =
      `search indexing has not moved for ${Math.round(r.idle ?? 0)} s: ${stalledEvents} events of ${stalledTenants} tenants wait` +
      (problem ? `; last error (since ${problem.since.toISOString()}): ${problem.error}` : "");
    return { stuck: true, reason, stalledTenants, stalledEvents, recentRefusals };
  }
}
