// Issue 9, finding 2: on the PostgreSQL search backend one tenant's expensive
// reads must not stall other tenants. Reads run on a pool of their own with a
// statement timeout, a client that goes away cancels its statement, query
// complexity is bounded, and expensive reads are limited per tenant.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, startApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/platform/log.ts";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

/** Copies of each large event in the noisy tenant: enough that one search scans for seconds. */
const COPIES = 100;
const LARGE_EVENTS = 10;

/** About 60 KB of open content: 240 metadata strings of 250 characters. */
function largeEvent(i: number) {
  const e = toConnectJson(makeEvent(i, "large"));
  const metadata: Record<string, string> = {};
  for (let k = 0; k < 240; k++) metadata[`k${k}`] = `lorem ipsum dolor sit amet ${k} `.repeat(8).slice(0, 250);
  return { ...e, metadata };
}

/** The costliest query the limits allow: 16 negated words, none of which occurs, so every row is scanned. */
const HEAVY_QUERY = Array.from({ length: 16 }, (_, i) => `-zq${i}x`).join(" ");

/** Statements still running over the large events in `database`. */
async function runningScans(admin: pg.Pool, database: string): Promise<number> {
  const r = await admin.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
      WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%jsonb_path_query%'`,
    [database],
  );
  return Number(r.rows[0]!.n);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function searchRequest(url: string, key: string, body: unknown, signal?: AbortSignal) {
  return fetch(`${url}/auditlog.v1.QueryService/SearchEvents`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
    signal,
  });
}

describe("PostgreSQL reads under one tenant's pathological searches", () => {
  let svc: TestService;
  let noisy: TenantKeys;
  let quiet: TenantKeys;
  let admin: pg.Pool;
  let database: string;

  beforeAll(async () => {
    svc = await startTestService({
      PG_POOL_SIZE: "4",
      PG_READ_POOL_SIZE: "6",
      AUDITLOG_TENANT_READ_CONCURRENCY: "3",
      AUDITLOG_READ_QUEUE_MS: "300",
      AUDITLOG_READ_TIMEOUT_MS: "120000",
    });
    expect(svc.backend.name).toBe("postgresql");
    noisy = await createTenantWithKeys(svc.url, "noisy");
    quiet = await createTenantWithKeys(svc.url, "quiet");
    const events = Array.from({ length: LARGE_EVENTS }, (_, i) => largeEvent(i));
    const r = await connectCall(svc.url, "auditlog.v1.IngestService/Append", { events }, noisy.ingest);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    // More rows of the same content, written straight into the table (the
    // chain is not what this test is about): a scan of them takes seconds.
    admin = new pg.Pool({ connectionString: svc.databaseUrl, max: 2 });
    database = decodeURIComponent(new URL(svc.databaseUrl).pathname.slice(1));
    await copyEvents(admin, "noisy", COPIES);
    const q = await connectCall(
      svc.url,
      "auditlog.v1.IngestService/Append",
      { events: [toConnectJson(makeEvent(1, "quiet"))] },
      quiet.ingest,
    );
    expect(q.status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await admin?.end();
    await svc?.stop();
  });

  it("another tenant's Append and GetEvent complete quickly while one tenant floods expensive searches", async () => {
    const abort = new AbortController();
    const settled: { status: number; body: { code?: string; message?: string } }[] = [];
    const floods = Array.from({ length: 10 }, () =>
      searchRequest(svc.url, noisy.query, { filter: { query: HEAVY_QUERY }, includeTotal: true }, abort.signal)
        .then(async (res) => ({ status: res.status, body: (await res.json().catch(() => ({}))) as { code?: string; message?: string } }))
        .catch((err: Error) => ({ status: 0, body: { code: err.name, message: err.message } }))
        .then((r) => {
          settled.push(r);
          return r;
        }),
    );
    try {
      await waitFor("the flood to reach PostgreSQL", async () => (await runningScans(admin, database)) > 0, 10_000);
      for (let i = 0; i < 3; i++) {
        let t = performance.now();
        const appended = await connectCall(
          svc.url,
          "auditlog.v1.IngestService/Append",
          { events: [toConnectJson(makeEvent(100 + i, "quiet"))] },
          quiet.ingest,
        );
        const appendMs = performance.now() - t;
        expect(appended.status, JSON.stringify(appended.body)).toBe(200);
        t = performance.now();
        const got = await connectCall<any>(svc.url, "auditlog.v1.QueryService/GetEvent", { id: `quiet-${100 + i}` }, quiet.query);
        const getMs = performance.now() - t;
        expect(got.status, JSON.stringify(got.body)).toBe(200);
        // Normally tens of milliseconds; generous for a busy 2-core machine.
        expect(appendMs).toBeLessThan(2000);
        expect(getMs).toBeLessThan(2000);
      }
      // Beyond the tenant's limit (3 here), calls are refused with a hint to retry rather than queued.
      await waitFor("the calls beyond the tenant's limit to be refused", async () => settled.length >= 7, 5000);
      for (const r of settled.slice(0, 7)) {
        expect(r.status).toBe(429);
        expect(r.body.code).toBe("resource_exhausted");
        expect(r.body.message).toMatch(/retry/);
      }
    } finally {
      abort.abort();
    }
    // The clients left: their statements are cancelled, not left running.
    await waitFor("the abandoned searches to stop in PostgreSQL", async () => (await runningScans(admin, database)) === 0, 5000);
    await Promise.all(floods);
  }, 60_000);

  it("a client that goes away cancels its running statement", async () => {
    const body = { filter: { query: HEAVY_QUERY }, includeTotal: true };
    let t = performance.now();
    const full = await searchRequest(svc.url, noisy.query, body);
    expect(full.status).toBe(200);
    await full.arrayBuffer();
    const fullMs = performance.now() - t;

    const abort = new AbortController();
    t = performance.now();
    const call = searchRequest(svc.url, noisy.query, body, abort.signal).catch(() => null);
    await waitFor("the search to run", async () => (await runningScans(admin, database)) > 0, 10_000);
    abort.abort();
    await call;
    await waitFor("the statement to be cancelled", async () => (await runningScans(admin, database)) === 0, 3000);
    // Stopped, not finished: an uncancelled run takes fullMs (seconds here).
    if (fullMs > 1000) expect(performance.now() - t).toBeLessThan(fullMs);
    // Its connection was replaced: reads still work.
    const ok = await connectCall(svc.url, "auditlog.v1.QueryService/GetEvent", { id: "quiet-1" }, quiet.query);
    expect(ok.status).toBe(200);
  }, 60_000);

  it("a search over the statement timeout is answered DEADLINE_EXCEEDED and frees its connection", async () => {
    const config = loadConfig({ PORT: "0", AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY, LOG_LEVEL: "error", AUDITLOG_READ_TIMEOUT_MS: "300" });
    const strict: App = await startApp({ ...config, databaseUrl: svc.databaseUrl }, createLogger({ level: "error" }));
    try {
      const r = await connectCall<any>(
        strict.url,
        "auditlog.v1.QueryService/SearchEvents",
        { filter: { query: HEAVY_QUERY }, includeTotal: true },
        noisy.query,
      );
      expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(504);
      expect(r.body.code).toBe("deadline_exceeded");
      expect(r.body.message).toMatch(/took longer than 0.3 s/);
      await waitFor("the statement to end", async () => (await runningScans(admin, database)) === 0, 3000);
      const s = await connectCall<any>(strict.url, "auditlog.v1.QueryService/GetStats", { filter: { query: HEAVY_QUERY } }, noisy.query);
      expect(s.body.code).toBe("deadline_exceeded");
    } finally {
      await strict.close();
    }
  }, 30_000);

  it("refuses queries beyond the complexity limits with INVALID_ARGUMENT naming the field and the limit", async () => {
    const search = (filter: unknown) => connectCall<any>(svc.url, "auditlog.v1.QueryService/SearchEvents", { filter }, quiet.query);
    const tooManyWords = await search({ query: Array.from({ length: 17 }, (_, i) => `-w${i}`).join(" ") });
    expect(tooManyWords.body.code).toBe("invalid_argument");
    expect(tooManyWords.body.message).toMatch(/^filter\.query: .*at most 16 free-text terms/);
    const tooManyTerms = await search({ query: Array.from({ length: 65 }, (_, i) => `actor.id:u${i}`).join(" ") });
    expect(tooManyTerms.body.code).toBe("invalid_argument");
    expect(tooManyTerms.body.message).toMatch(/^filter\.query: .*at most 64 terms/);
    const wildcards = await search({ query: Array.from({ length: 17 }, (_, i) => `metadata.k${i}:*`).join(" ") });
    expect(wildcards.body.message).toMatch(/^filter\.query: .*at most 16 wildcards/);
    const combined = await search({
      text: Array.from({ length: 10 }, (_, i) => `a${i}`).join(" "),
      query: Array.from({ length: 10 }, (_, i) => `b${i}`).join(" "),
    });
    expect(combined.body.message).toMatch(/^filter\.query: .*at most 16 free-text terms/);
    const metadata = await search({
      metadata: Array.from({ length: 15 }, (_, i) => ({ key: `m${i}` })),
      query: Array.from({ length: 6 }, (_, i) => `metadata.q${i}:v`).join(" "),
    });
    expect(metadata.body.message).toMatch(/^filter\.query: .*at most 20 metadata conditions/);
    const exported = await fetch(
      `${svc.url}/v1/export?text=${encodeURIComponent(Array.from({ length: 17 }, (_, i) => `w${i}`).join(" "))}`,
      {
        headers: { authorization: `Bearer ${quiet.query}` },
      },
    );
    expect(exported.status).toBe(400);
    expect(((await exported.json()) as { message: string }).message).toMatch(/^filter\.text: .*at most 16 free-text terms/);
    const fine = await search({ query: 'action:customer.* -test "card declined"', text: "user" });
    expect(fine.status).toBe(200);
  });
});

/** `copies` more rows of each of the tenant's events, with sequences after the real ones. */
async function copyEvents(db: pg.Pool, tenantId: string, copies: number): Promise<void> {
  const cols = (
    await db.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' AND table_schema = current_schema() ORDER BY ordinal_position",
    )
  ).rows.map((r) => r.column_name);
  const select = cols.map((c) => (c === "sequence" ? "e.sequence + c * 1000" : c === "id" ? "e.id || '-copy-' || c" : `e.${c}`));
  await db.query(
    `INSERT INTO events (${cols.join(", ")})
     SELECT ${select.join(", ")} FROM events e, generate_series(1, $2::int) c WHERE e.tenant_id = $1`,
    [tenantId, copies],
  );
}
