// Rebuilds the search index from PostgreSQL (DESIGN.md invariant 4: the
// index is derived and can be dropped and rebuilt at any time).
//
//   DATABASE_URL=postgres://... ELASTICSEARCH_URL=http://... npm run reindex [-- --prefix P]
//
// Steps: put the index template; delete the tenant-event indices
// (`<prefix>-*`, by their resolved names, so action.destructive_requires_name
// does not get in the way); reset index_progress to 0 for every tenant and
// forget the recorded refusals (index_failures: every event is tried again,
// and what is still refused is recorded again); then run an Indexer until
// every tenant is indexed up to its chain head as of the reset, printing
// progress (events/s).
//
// Also the upgrade step from the first index layout (monthly indices by
// occurred_at, `auditlog-events-YYYY.MM`) to the current one (by received_at,
// `auditlog-events-received-YYYY.MM`): both match `<prefix>-*`, so the old
// indices are deleted and everything is rebuilt in the new ones. Until it
// has run, re-indexed events (reconciler, progress resets) would appear
// twice in search, once in each layout.
//
// Safe beside running service replicas: ingest is untouched (search answers
// are incomplete until the rebuild is done), and their indexer notices the
// reset (progress updates are compare-and-set) and starts over from 0. If a
// replica holds the indexer lock, it does the rebuild and this script only
// reports progress; otherwise this script's Indexer does it. The order
// (delete, then reset) matters: a reset first could let a running indexer
// record progress over documents that the delete then removes.
//
// Options: --prefix (default auditlog-events), --batch-size (2000),
// --concurrency (6), --yes (no 5 s grace period before deleting),
// --template FILE (a JSON index template body to use instead of the
// built-in one from src/search/index-template.ts).
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { indexNames, type IndexTemplateBody } from "../src/search/elasticsearch/index-names.ts";
import { ensureIndexTemplate } from "../src/search/elasticsearch/index-setup.ts";
import { Indexer } from "../src/search/elasticsearch/indexer.ts";
import { indexTemplate } from "../src/search/elasticsearch/index-template.ts";
import { createLogger, isLogLevel } from "../src/platform/log.ts";
import { checkProgressTable, committedHeads, committedTotals, indexedPositions, resetProgress } from "../src/store/index-progress.ts";

const out = (msg: string) => process.stdout.write(`${msg}\n`);

class UsageError extends Error {}

function env(): { databaseUrl: string; elasticsearchUrl: string } {
  const errors: string[] = [];
  const databaseUrl = process.env.DATABASE_URL ?? "";
  const elasticsearchUrl = (process.env.ELASTICSEARCH_URL ?? "").replace(/\/+$/, "");
  if (!databaseUrl) errors.push("DATABASE_URL is not set: the PostgreSQL the service uses (postgres://user:pass@host:5432/db)");
  else if (!/^postgres(ql)?:\/\//.test(databaseUrl)) errors.push("DATABASE_URL: must be a postgres:// or postgresql:// URL");
  if (!elasticsearchUrl) errors.push("ELASTICSEARCH_URL is not set: the Elasticsearch to rebuild (http://host:9200)");
  else if (!/^https?:\/\/[^/]+/.test(elasticsearchUrl)) errors.push("ELASTICSEARCH_URL: must be an http:// or https:// URL");
  if (errors.length) throw new UsageError(`reindex: ${errors.join("\n  ")}`);
  return { databaseUrl, elasticsearchUrl };
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      prefix: { type: "string" },
      "batch-size": { type: "string", default: "2000" },
      concurrency: { type: "string", default: "6" },
      yes: { type: "boolean", default: false },
      template: { type: "string" },
    },
  });
  const { databaseUrl, elasticsearchUrl } = env();
  const names = indexNames(args.prefix);
  const batchSize = Number(args["batch-size"]);
  const concurrency = Number(args.concurrency);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError("--batch-size: must be a whole number >= 1");
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError("--concurrency: must be a whole number >= 1");
  let template: IndexTemplateBody = indexTemplate;
  if (args.template) {
    try {
      template = JSON.parse(await readFile(args.template, "utf8")) as IndexTemplateBody;
    } catch (err) {
      throw new UsageError(`--template ${args.template}: ${(err as Error).message}`);
    }
    if (!template || typeof template !== "object" || typeof template.template !== "object") {
      throw new UsageError(`--template ${args.template}: not an index template body ({"index_patterns": [...], "template": {...}})`);
    }
  }
  const level = process.env.LOG_LEVEL ?? "warn";
  const log = createLogger({ level: isLogLevel(level) ? level : "warn", stream: process.stderr });

  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  pool.on("error", (err) => log.warn("idle PostgreSQL connection failed", { err: err.message }));
  const client = new Client({ node: elasticsearchUrl });
  let indexer: Indexer | null = null;
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    out("interrupted: stopping after the batches in flight (the index stays incomplete; run reindex again)");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    // Preflight with clear errors.
    try {
      await checkProgressTable(pool);
    } catch (err) {
      throw new UsageError(
        `reindex: PostgreSQL at DATABASE_URL is not usable (${(err as Error).message}); is it the service's database, with migrations applied (start the service once)?`,
      );
    }
    try {
      // (Not GET /: the integ-test distribution has no handler for it.)
      const health = await client.cluster.health();
      out(`Elasticsearch cluster ${health.cluster_name} (${health.status}) at ${elasticsearchUrl}`);
    } catch (err) {
      throw new UsageError(`reindex: Elasticsearch at ELASTICSEARCH_URL is not reachable (${(err as Error).message})`);
    }

    const existing = Object.keys(
      await client.indices.get({ index: names.pattern, ignore_unavailable: true, allow_no_indices: true, expand_wildcards: "all" }),
    ).sort();
    const totals = await committedTotals(pool);
    out(`rebuilding ${names.alias} from PostgreSQL: ${totals.tenants} tenants, ${totals.events} events`);
    out(existing.length ? `indices to delete: ${existing.join(", ")}` : `no ${names.pattern} indices exist`);
    if (existing.length && !args.yes) {
      out("deleting in 5 s (Ctrl-C to cancel, --yes to skip this pause)");
      await new Promise((r) => setTimeout(r, 5000));
      if (interrupted) return;
    }

    try {
      await ensureIndexTemplate(client, template, { prefix: names.prefix });
    } catch (err) {
      const body = (err as { meta?: { body?: unknown } }).meta?.body;
      throw new UsageError(`reindex: Elasticsearch refused the index template: ${body ? JSON.stringify(body) : (err as Error).message}`);
    }
    if (existing.length) await client.indices.delete({ index: existing.join(",") });
    // After the delete (see the header), and for every tenant.
    await resetProgress(pool);
    const target = await committedHeads(pool);
    const targetTotal = [...target.values()].reduce((a, b) => a + b, 0n);
    out(`template put, ${existing.length} indices deleted, progress reset; indexing ${targetTotal} events`);

    indexer = new Indexer({ pool, client, log, prefix: names.prefix, template, batchSize, concurrency, lockRetryMs: 2000 });
    indexer.start();
    const t0 = performance.now();
    let lastT = t0;
    let lastDone = 0n;
    let reportedWho = false;
    for (;;) {
      await new Promise((r) => setTimeout(r, 2000));
      if (!reportedWho) {
        out(
          indexer.isLeader()
            ? "this process holds the indexer lock and indexes"
            : "a running service replica holds the indexer lock and indexes; watching its progress",
        );
        reportedWho = true;
      }
      const indexed = await indexedPositions(pool);
      let done = 0n;
      let behind = 0;
      for (const [tenant, goal] of target) {
        const i = indexed.get(tenant) ?? 0n;
        done += i < goal ? i : goal;
        if (i < goal) behind++;
      }
      const now = performance.now();
      const rate = Number(done - lastDone) / ((now - lastT) / 1000);
      const pct = targetTotal > 0n ? Number((done * 1000n) / targetTotal) / 10 : 100;
      const stuck = indexer.stuckTenants();
      const refused = indexer.getStats().eventsRefused;
      out(
        `${done}/${targetTotal} events (${pct.toFixed(1)}%), ${Math.round(rate)} events/s, ${behind} tenants to go` +
          (refused ? `; ${refused} events refused for their content (index_failures; GetIndexStatus lists them)` : "") +
          (stuck.length ? `; STUCK: ${stuck.map((s) => `${s.tenantId}@${s.sequence} (${s.error})`).join("; ")}` : ""),
      );
      lastT = now;
      lastDone = done;
      if (behind === 0) break;
      if (interrupted) return;
    }
    const secs = (performance.now() - t0) / 1000;
    out(
      `done: ${targetTotal} events in ${secs.toFixed(1)} s (${Math.round(Number(targetTotal) / Math.max(secs, 0.001))} events/s); the service's indexer follows new commits from here`,
    );
  } finally {
    await indexer?.stop();
    await client.close().catch(() => {});
    await pool.end().catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof UsageError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
