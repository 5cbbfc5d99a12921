// Search indexer benchmark:
//   1. backlog: N events committed with no indexer running, then one Indexer
//      started: time until index_progress reaches every head (events/s);
//   2. steady load: writeBatch at R events/s for S seconds while the indexer
//      runs; for every write, lag = time from its commit until index_progress
//      covers its last sequence (searchable). Reports p50/p90/p99/max.
//
//   node bench/index-lag.ts [--backlog 200000] [--backlog-tenants 1] [--rates 2000,10000]
//        [--seconds 30] [--tenants 4] [--batch-size 2000] [--concurrency 6] [--heap 1g] [--baseline]
//
// --baseline first runs each rate with no indexer: what writeBatch alone
// achieves on the machine (the writers, the indexer, PostgreSQL and
// Elasticsearch share its cores).
//
// DATABASE_URL: a server where we may CREATE DATABASE (a fresh bench_<hex>
// database is made and dropped); default: an embedded PostgreSQL under
// .cache/bench-postgres. ELASTICSEARCH_URL: default, a throw-away node
// started with src/devservers/elasticsearch.ts (full JIT, as in production).
import { randomBytes } from "node:crypto";
import path from "node:path";
import { parseArgs } from "node:util";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { startElasticsearch } from "../src/devservers/elasticsearch.ts";
import { freePort } from "../src/devservers/processes.ts";
import type { EventRecord } from "../src/domain/event-record.ts";
import { sealContent } from "../src/domain/hash-chain.ts";
import { microsFromDate } from "../src/domain/timestamp.ts";
import { indexNames, type IndexTemplateBody } from "../src/search/elasticsearch/index-names.ts";
import { ensureIndexTemplate } from "../src/search/elasticsearch/index-setup.ts";
import { indexTemplate } from "../src/search/elasticsearch/index-template.ts";
import { Indexer } from "../src/search/elasticsearch/indexer.ts";
import { createLogger } from "../src/platform/log.ts";
import { startEmbeddedPostgres } from "../src/devservers/embedded-postgres.ts";
import { type WriteItem, writeBatch } from "../src/store/event-writer.ts";
import { migrate } from "../src/store/migrate.ts";
import { ensurePartitions } from "../src/store/partitions.ts";
import { TenantStore } from "../src/store/tenant-store.ts";

const { values: args } = parseArgs({
  options: {
    backlog: { type: "string", default: "200000" },
    "backlog-tenants": { type: "string", default: "1" },
    rates: { type: "string", default: "2000,10000" },
    seconds: { type: "string", default: "30" },
    tenants: { type: "string", default: "4" },
    "batch-size": { type: "string", default: "2000" },
    concurrency: { type: "string", default: "6" },
    heap: { type: "string", default: "1g" },
    baseline: { type: "boolean", default: false },
  },
});
const BACKLOG = Number(args.backlog);
const BACKLOG_TENANTS = Number(args["backlog-tenants"]);
const RATES = args.rates!.split(",").filter(Boolean).map(Number);
const SECONDS = Number(args.seconds);
const TENANTS = Number(args.tenants);
const BATCH_SIZE = Number(args["batch-size"]);
const CONCURRENCY = Number(args.concurrency);

const say = (m: string) => process.stderr.write(`${m}\n`);
const log = createLogger({ level: (process.env.LOG_LEVEL as "warn") || "warn", stream: process.stderr });
const repoRoot = path.resolve(import.meta.dirname, "..");

const ACTIONS = ["customer.created", "customer.updated", "invoice.billed", "account.deactivated", "user.login"];
let counter = 0;
function item(tenantId: string): WriteItem {
  const i = counter++;
  const r: EventRecord = {
    id: `b-${i}-${randomBytes(4).toString("hex")}`,
    occurredAt: microsFromDate(new Date(Date.now() - (i % 3600) * 1000)),
    action: ACTIONS[i % ACTIONS.length]!,
    actor: {
      id: `user-${i % 97}`,
      type: "USER",
      name: `User ${i % 97}`,
      ip: `10.0.${i % 256}.${(i * 7) % 256}`,
      userAgent: "bench/1.0",
      sessionId: `s-${i % 1000}`,
    },
    target: { type: i % 2 ? "customer" : "invoice", id: `t-${i % 1001}`, name: `Target ${i % 1001}` },
    outcome: "SUCCESS",
    severity: "INFO",
    context: { requestId: `req-${i}`, traceId: "", source: "bench", location: "eu-west-1" },
    changes: i % 4 === 0 ? { before: { plan: "free", seats: i % 50 }, after: { plan: "pro", seats: (i % 50) + 1 } } : null,
    metadata: { plan: i % 3 ? "pro" : "free", seats: i % 50, nested: { region: `eu-${i % 4}`, flag: i % 2 === 0 } },
    message: `benchmark event number ${i} for user ${i % 97}`,
  };
  return { tenantId, record: r, ...sealContent(r) };
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function progress(pool: pg.Pool): Promise<Map<string, { head: bigint; indexed: bigint }>> {
  const { rows } = await pool.query<{ tenant_id: string; head: string; indexed: string }>(
    `SELECT h.tenant_id, h.sequence AS head, coalesce(p.indexed_sequence, 0) AS indexed
       FROM chain_heads h LEFT JOIN index_progress p USING (tenant_id)`,
  );
  return new Map(rows.map((r) => [r.tenant_id, { head: BigInt(r.head), indexed: BigInt(r.indexed) }]));
}

/**
 * writeBatch at `rate` events/s (round robin over tenants, up to 8 calls in
 * flight, at most 1000 events per call) for SECONDS; with `measureLag`, the
 * time from each call's commit until index_progress covers its last sequence.
 */
async function steady(pool: pg.Pool, tenants: string[], rate: number, measureLag: boolean): Promise<string> {
  type Pending = { tenant: string; seq: bigint; committedAt: number };
  const pending: Pending[] = [];
  const lags: number[] = [];
  const writeMs: number[] = [];
  let sent = 0;
  let writes = 0;
  let inflight = 0;
  let writeErrors = 0;
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  let rr = 0;
  let polling = measureLag;
  const poller = (async () => {
    while (polling || pending.length > 0) {
      const p = await progress(pool);
      const now = performance.now();
      for (let i = pending.length - 1; i >= 0; i--) {
        const w = pending[i]!;
        if (p.get(w.tenant)!.indexed >= w.seq) {
          lags.push(now - w.committedAt);
          pending.splice(i, 1);
        }
      }
      if (!polling && now > end + 60_000) break;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate) - sent;
    if (due > 0 && inflight < 8) {
      const n = Math.min(due, 1000);
      const tenant = tenants[rr++ % tenants.length]!;
      const items = Array.from({ length: n }, () => item(tenant));
      sent += n;
      inflight++;
      const w0 = performance.now();
      writeBatch(pool, items)
        .then(
          (res) => {
            const committedAt = performance.now();
            writeMs.push(committedAt - w0);
            writes++;
            if (measureLag) pending.push({ tenant, seq: res.reduce((m, r) => (r.sequence > m ? r.sequence : m), 0n), committedAt });
          },
          () => writeErrors++,
        )
        .finally(() => inflight--);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const elapsed = (performance.now() - t0) / 1000;
  while (inflight > 0) await new Promise((r) => setTimeout(r, 5));
  polling = false;
  await poller;
  lags.sort((a, b) => a - b);
  writeMs.sort((a, b) => a - b);
  return (
    `wrote ${sent} events (${Math.round(sent / elapsed)}/s achieved) in ${writes} writeBatch calls ` +
    `(p50 ${pct(writeMs, 50).toFixed(0)} ms, p99 ${pct(writeMs, 99).toFixed(0)} ms, errors ${writeErrors})` +
    (measureLag
      ? `; commit->searchable lag p50 ${pct(lags, 50).toFixed(0)} ms, p90 ${pct(lags, 90).toFixed(0)} ms, ` +
        `p99 ${pct(lags, 99).toFixed(0)} ms, max ${lags.at(-1)?.toFixed(0)} ms` +
        (pending.length ? `; ${pending.length} writes not indexed within 60 s` : "")
      : "")
  );
}

async function main(): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    // PostgreSQL
    let adminUrl = process.env.DATABASE_URL;
    if (!adminUrl) {
      const pgEmbedded = await startEmbeddedPostgres({ dataDir: path.join(repoRoot, ".cache", "bench-postgres"), port: await freePort() });
      cleanups.push(() => pgEmbedded.stop());
      adminUrl = pgEmbedded.adminUrl;
    }
    const dbName = `bench_${randomBytes(4).toString("hex")}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    });
    const u = new URL(adminUrl);
    u.pathname = `/${dbName}`;
    const pool = new pg.Pool({ connectionString: u.toString(), max: 20 });
    pool.on("error", () => {}); // sessions ended by the DROP DATABASE ... (FORCE) at cleanup
    cleanups.push(() => pool.end());
    await migrate(pool);
    await ensurePartitions(pool);

    // Elasticsearch
    let esUrl = process.env.ELASTICSEARCH_URL;
    if (!esUrl) {
      const es = await startElasticsearch({ heap: args.heap, log: say });
      cleanups.push(() => es.stop());
      esUrl = es.url;
    }
    const client = new Client({ node: esUrl });
    cleanups.push(() => client.close());
    const names = indexNames(`bench-${randomBytes(4).toString("hex")}`);
    const template: IndexTemplateBody = indexTemplate;
    await ensureIndexTemplate(client, template, { prefix: names.prefix });
    cleanups.push(async () => {
      const found = Object.keys(await client.indices.get({ index: names.pattern, allow_no_indices: true, ignore_unavailable: true }));
      if (found.length) await client.indices.delete({ index: found.join(",") });
      await client.indices.deleteIndexTemplate({ name: names.templateName }).catch(() => {});
    });

    const tenants = Array.from({ length: Math.max(TENANTS, BACKLOG_TENANTS) }, (_, i) => `bench-t${i}`);
    const store = new TenantStore(pool);
    for (const t of tenants) await store.create(t, t);
    const newIndexer = () =>
      new Indexer({ pool, client, log, prefix: names.prefix, template, batchSize: BATCH_SIZE, concurrency: CONCURRENCY });

    // 1. Backlog
    if (BACKLOG > 0) {
      say(`backlog: writing ${BACKLOG} events over ${BACKLOG_TENANTS} tenant(s)...`);
      for (let done = 0; done < BACKLOG; ) {
        const n = Math.min(5000, BACKLOG - done);
        await writeBatch(
          pool,
          Array.from({ length: n }, (_, k) => item(tenants[(done + k) % BACKLOG_TENANTS]!)),
        );
        done += n;
      }
      const indexer = newIndexer();
      const t0 = performance.now();
      indexer.start();
      let last = 0n;
      let lastT = t0;
      for (;;) {
        await new Promise((r) => setTimeout(r, 1000));
        const p = await progress(pool);
        const indexed = [...p.values()].reduce((a, v) => a + v.indexed, 0n);
        const now = performance.now();
        say(`  indexed ${indexed} (${Math.round(Number(indexed - last) / ((now - lastT) / 1000))} events/s)`);
        last = indexed;
        lastT = now;
        if ([...p.values()].every((v) => v.indexed === v.head)) break;
      }
      const secs = (performance.now() - t0) / 1000;
      await indexer.stop();
      console.log(
        `backlog: ${BACKLOG} events (${BACKLOG_TENANTS} tenant(s)) indexed in ${secs.toFixed(1)} s = ${Math.round(BACKLOG / secs)} events/s (batch ${BATCH_SIZE}, ${CONCURRENCY} bulk requests in flight)`,
      );
    }

    // 2. Steady load
    for (const rate of RATES) {
      if (args.baseline) {
        // Without an indexer: what writeBatch alone achieves on this machine.
        console.log(
          `baseline (no indexer) ${rate} events/s target for ${SECONDS} s: ${await steady(pool, tenants.slice(0, TENANTS), rate, false)}`,
        );
      }
      const indexer = newIndexer();
      indexer.start();
      // Start from a caught-up index (the backlog or a baseline run left events behind).
      for (;;) {
        await new Promise((r) => setTimeout(r, 500));
        if ([...(await progress(pool)).values()].every((v) => v.indexed === v.head)) break;
      }
      const r = await steady(pool, tenants.slice(0, TENANTS), rate, true);
      await indexer.stop();
      console.log(`steady ${rate} events/s target for ${SECONDS} s: ${r}`);
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => say(`cleanup: ${String(err)}`));
  }
}

main().catch((err: unknown) => {
  say(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
