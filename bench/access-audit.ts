// What the synchronous access audit costs a search: the same searches, one
// at a time and then from several clients at once, against the service with
// AUDITLOG_ACCESS_AUDIT=off and =on (each a child process on a database of
// its own, PostgreSQL search backend). With the audit on, every search waits
// for its record's group commit before it is answered.
//
//   npx node bench/access-audit.ts --database-url postgres://postgres@127.0.0.1:5432/postgres \
//     [--searches 1000] [--concurrency 8] [--events 2000]
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { connectCall } from "../scripts/lib/connect-json.ts";
import { startServiceChild } from "./service-child.ts";

const { values: a } = parseArgs({
  options: {
    "database-url": { type: "string", default: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
    searches: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "8" },
    events: { type: "string", default: "2000" },
  },
});
const SEARCHES = Number(a.searches);
const CONCURRENCY = Number(a.concurrency);
const EVENTS = Number(a.events);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(ms: number[]): string {
  const s = [...ms].sort((x, y) => x - y);
  return `p50 ${percentile(s, 50).toFixed(2)} ms, p90 ${percentile(s, 90).toFixed(2)} ms, p99 ${percentile(s, 99).toFixed(2)} ms`;
}

async function run(audit: "on" | "off"): Promise<{ sequential: number[]; concurrent: number[]; wallMs: number }> {
  const svc = await startServiceChild({
    adminDatabaseUrl: a["database-url"]!,
    name: `bench_audit_${audit}_${randomBytes(3).toString("hex")}`,
    env: { AUDITLOG_ACCESS_AUDIT: audit, AUDITLOG_TENANT_READ_RATE: "0", AUDITLOG_KEY_READ_RATE: "0" },
  });
  try {
    await connectCall(svc.url, "auditlog.v1.AdminService/CreateTenant", { id: "bench", name: "bench" }, svc.operatorKey);
    const key = async (scope: string) =>
      (
        await connectCall<{ secret: string }>(
          svc.url,
          "auditlog.v1.AdminService/CreateApiKey",
          { tenantId: "bench", scopes: [scope] },
          svc.operatorKey,
        )
      ).body.secret;
    const ingest = await key("SCOPE_INGEST");
    const query = await key("SCOPE_QUERY");
    for (let i = 0; i < EVENTS; i += 500) {
      const events = Array.from({ length: Math.min(500, EVENTS - i) }, (_, j) => ({
        occurredAt: new Date(Date.UTC(2026, 0, 1) + (i + j) * 1000).toISOString(),
        action: `customer.${(i + j) % 5 === 0 ? "deleted" : "updated"}`,
        actor: { id: `user-${(i + j) % 50}` },
        message: `event ${i + j}`,
      }));
      const r = await connectCall(svc.url, "auditlog.v1.IngestService/Append", { events }, ingest);
      if (r.status !== 200) throw new Error(`Append: ${JSON.stringify(r.body)}`);
    }
    const search = async (n: number) => {
      const t = performance.now();
      const r = await connectCall(
        svc.url,
        "auditlog.v1.QueryService/SearchEvents",
        { filter: { query: `actor.id:user-${n % 50}` }, pageSize: 20 },
        query,
      );
      if (r.status !== 200) throw new Error(`SearchEvents: ${JSON.stringify(r.body)}`);
      return performance.now() - t;
    };
    for (let i = 0; i < 50; i++) await search(i); // warm-up
    const sequential: number[] = [];
    for (let i = 0; i < SEARCHES; i++) sequential.push(await search(i));
    const concurrent: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < SEARCHES) concurrent.push(await search(next++));
      }),
    );
    return { sequential, concurrent, wallMs: performance.now() - started };
  } finally {
    await svc.close();
  }
}

console.log(`access audit cost: ${SEARCHES} searches (pageSize 20, one actor), ${EVENTS} events, PostgreSQL backend`);
for (const audit of ["off", "on"] as const) {
  const r = await run(audit);
  console.log(`AUDITLOG_ACCESS_AUDIT=${audit}`);
  console.log(`  one at a time:   ${summary(r.sequential)}`);
  console.log(`  ${CONCURRENCY} at a time:    ${summary(r.concurrent)}; ${((SEARCHES / r.wallMs) * 1000).toFixed(0)} searches/s`);
}
