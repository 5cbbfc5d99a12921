// A hostile tenant must not be able to stop search indexing for everyone
// (issue 9), against real PostgreSQL and the shared Elasticsearch, each test
// under its own index prefix:
//  (a) 1,000 events with occurred_at one month apart open at most two
//      indices (by received_at), and another tenant's events stay searchable;
//  (b) an event Elasticsearch refuses for its content is recorded and
//      skipped: the tenant's later events are indexed, GetIndexStatus lists
//      the refusal, /healthz warns, search stays SERVING;
//  (c) a cluster that refuses writes (a write block) holds progress, never
//      skips, and turns QueryService NOT_SERVING with the reason while
//      ingest stays SERVING; lifting the block brings it back.
//
// AUDITLOG_LAYOUT_TEST_MONTHS sets the month count of (a) (default 1000).
import { randomBytes } from "node:crypto";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { EventRecord } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { microsFromDate } from "../../src/domain/timestamp.ts";
import { ElasticsearchSearchBackend } from "../../src/search/elasticsearch/backend.ts";
import { Indexer } from "../../src/search/elasticsearch/indexer.ts";
import { indexNames, type IndexNames } from "../../src/search/elasticsearch/index-names.ts";
import { ensureIndexTemplate } from "../../src/search/elasticsearch/index-setup.ts";
import { indexTemplate } from "../../src/search/elasticsearch/index-template.ts";
import { createLogger } from "../../src/platform/log.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { migrate } from "../../src/store/migrate.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { freshDatabase } from "../support/db.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const log = createLogger({ level: (process.env.TEST_LOG_LEVEL as "warn" | undefined) ?? "error", stream: process.stderr });
const MONTHS = Number(process.env.AUDITLOG_LAYOUT_TEST_MONTHS || 1000);

function record(i: number, idPrefix: string, base: number): EventRecord {
  const e = makeEvent(i, idPrefix, base);
  return {
    id: e.id,
    occurredAt: microsFromDate(e.occurredAt),
    action: e.action,
    actor: { id: e.actor.id, type: "USER", name: e.actor.name, ip: e.actor.ip, userAgent: "vitest", sessionId: "" },
    target: e.target,
    outcome: e.outcome.replace("OUTCOME_", "") as EventRecord["outcome"],
    severity: e.severity.replace("SEVERITY_", "") as EventRecord["severity"],
    context: { requestId: e.context.requestId, traceId: "", source: e.context.source, location: "" },
    changes: null,
    metadata: e.metadata,
    message: e.message,
  };
}

function item(tenantId: string, r: EventRecord): WriteItem {
  return { tenantId, record: r, ...sealContent(r) };
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function dropIndices(client: Client, names: IndexNames): Promise<void> {
  const found = await client.indices
    .get({ index: names.pattern, ignore_unavailable: true, allow_no_indices: true, expand_wildcards: "all" })
    .catch(() => ({}));
  const list = Object.keys(found);
  if (list.length) await client.indices.delete({ index: list.join(",") }).catch(() => {});
  await client.indices.deleteIndexTemplate({ name: names.templateName }).catch(() => {});
}

async function indicesOf(client: Client, names: IndexNames): Promise<string[]> {
  return Object.keys(
    await client.indices.get({ index: names.pattern, ignore_unavailable: true, allow_no_indices: true, expand_wildcards: "all" }),
  ).sort();
}

/** A Connect unary call with JSON bodies. */
async function call<T = any>(url: string, method: string, body: unknown, key?: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

describe("index layout bounded by design", () => {
  const esUrl = inject("elasticsearchUrl");
  const names = indexNames(`ltest-${randomBytes(4).toString("hex")}`);
  let client: Client;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let pool: pg.Pool;
  let indexer: Indexer;

  beforeAll(async () => {
    client = new Client({ node: esUrl, requestTimeout: 30_000 });
    db = await freshDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 8 });
    pool.on("error", () => {});
    await migrate(pool);
    await ensurePartitions(pool);
    const store = new TenantStore(pool);
    for (const t of ["hostile", "bystander"]) await store.create(t, t);
    await ensureIndexTemplate(client, indexTemplate, { prefix: names.prefix });
    indexer = new Indexer({ pool, client, log, prefix: names.prefix, template: indexTemplate, pollMs: 100 });
  });
  afterAll(async () => {
    await indexer?.stop();
    if (client) await dropIndices(client, names);
    await pool?.end();
    await db?.drop();
    await client?.close();
  });

  it(`(a) ${MONTHS} events one month apart from 2100-01 open at most two indices; another tenant is still searchable`, async () => {
    const hostile = Array.from({ length: MONTHS }, (_, i) =>
      item("hostile", { ...record(i, "far", 0), occurredAt: microsFromDate(new Date(Date.UTC(2100, i, 15))) }),
    );
    for (let i = 0; i < hostile.length; i += 1000) {
      expect((await writeBatch(pool, hostile.slice(i, i + 1000))).every((r) => r.status === "accepted")).toBe(true);
    }
    const bystander = Array.from({ length: 50 }, (_, i) => item("bystander", record(i, "b", Date.now() - 60_000)));
    expect((await writeBatch(pool, bystander)).every((r) => r.status === "accepted")).toBe(true);
    indexer.start();

    const backend = new ElasticsearchSearchBackend(client, pool, { readAlias: names.alias });
    expect(await backend.waitForPosition("bystander", 50n, 60_000)).toBe(true);
    expect(await backend.waitForPosition("hostile", BigInt(MONTHS), 60_000)).toBe(true);
    const page = await backend.search("bystander", { conditions: [] }, "asc", null, 100, true);
    expect(page.total).toBe(50n);
    expect(page.records.map((r) => r.id).sort()).toEqual(bystander.map((b) => b.record.id).sort());
    // Every hostile event is searchable too, by its occurred_at.
    const far = await backend.search("hostile", { conditions: [] }, "desc", null, 1, true);
    expect(far.total).toBe(BigInt(MONTHS));
    expect(far.records[0]!.id).toBe(`far-${MONTHS - 1}`);

    const indices = await indicesOf(client, names);
    expect(indices.length).toBeGreaterThanOrEqual(1);
    expect(indices.length).toBeLessThanOrEqual(2); // this month, and the next if the test straddles midnight at a month's end
    for (const i of indices) expect(i).toMatch(new RegExp(`^${names.prefix}-received-\\d{4}\\.\\d{2}$`));
  }, 180_000);
});

describe("refused documents and stuck indexing, through the service", () => {
  const esUrl = inject("elasticsearchUrl");
  const names = indexNames(`rtest-${randomBytes(4).toString("hex")}`);
  let svc: TestService;
  let keys: TenantKeys;
  let client: Client;
  const status = () => call(svc.url, "auditlog.v1.QueryService/GetIndexStatus", {}, keys.query);
  const healthz = async () => (await fetch(`${svc.url}/healthz`)).json() as Promise<any>;
  const check = async (service: string) => (await call(svc.url, "grpc.health.v1.Health/Check", { service })).body.status as string;
  /** The ids of /v1/export's file (NDJSON unless `params` says CSV), oldest first. */
  const exportedIds = async (params: string) => {
    const res = await fetch(`${svc.url}/v1/export?order=asc${params}`, { headers: { authorization: `Bearer ${keys.query}` } });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const lines = text.trim().split("\n");
    return params.includes("csv") ? lines.slice(1).map((l) => l.split(",")[1]!) : lines.map((l) => JSON.parse(l).event.id as string);
  };

  beforeAll(async () => {
    client = new Client({ node: esUrl, requestTimeout: 30_000 });
    svc = await startTestService({
      ELASTICSEARCH_URL: esUrl,
      AUDITLOG_ES_INDEX_PREFIX: names.prefix,
      AUDITLOG_RECONCILE_INTERVAL_MS: "0",
      AUDITLOG_INDEX_STALL_MS: "2000",
    });
    keys = await createTenantWithKeys(svc.url, `refuse-${Date.now()}`);
  });
  afterAll(async () => {
    await svc?.stop();
    if (client) await dropIndices(client, names);
    await client?.close();
  });

  it("(b) an event refused for its content is recorded and skipped; later events are indexed", async () => {
    const first = Array.from({ length: 5 }, (_, i) => toConnectJson(makeEvent(i, "ok", Date.now() - 3_600_000)));
    expect((await call(svc.url, "auditlog.v1.IngestService/Append", { events: first }, keys.ingest)).status).toBe(200);
    // Validation keeps such times out at ingest; a row written straight into
    // PostgreSQL stands for whatever else the index may refuse one day.
    // date_nanos cannot hold a time before 1970.
    const bad = item(keys.tenantId, { ...record(99, "bad", Date.now()), occurredAt: microsFromDate(new Date(Date.UTC(1965, 0, 1))) });
    expect((await writeBatch(svc.pool, [bad]))[0]!.status).toBe("accepted");
    const later = Array.from({ length: 5 }, (_, i) => toConnectJson(makeEvent(5 + i, "ok", Date.now() - 3_600_000)));
    const appended = await call(svc.url, "auditlog.v1.IngestService/Append", { events: later }, keys.ingest);
    expect(appended.status).toBe(200);
    expect(appended.body.summary.position).toBe("11");

    const st = await waitFor(
      "the tenant to be indexed past the refused event",
      async () => {
        const s = await status();
        return s.body.indexedPosition === "11" && s.body;
      },
      30_000,
    );
    expect(st).toMatchObject({ backend: "elasticsearch", committedPosition: "11", refusedDocuments: "1" });
    expect(st.lagEvents ?? "0").toBe("0");
    expect(st.recentRefusals).toHaveLength(1);
    expect(st.recentRefusals[0]).toMatchObject({ sequence: "6", eventId: bad.record.id });
    expect(st.recentRefusals[0].reason).toMatch(/document_parsing_exception|mapper_parsing_exception/);
    expect(Date.parse(st.recentRefusals[0].refusedAt)).toBeGreaterThan(Date.now() - 60_000);

    const found = await call(
      svc.url,
      "auditlog.v1.QueryService/SearchEvents",
      { minPosition: "11", includeTotal: true, pageSize: 100 },
      keys.query,
    );
    expect(found.status, JSON.stringify(found.body)).toBe(200);
    expect(found.body.total).toBe("10");
    expect(found.body.events.map((e: any) => e.event.id).sort()).toEqual([...first, ...later].map((e) => e.id as string).sort());
    // Still stored and readable.
    expect((await call(svc.url, "auditlog.v1.QueryService/GetEvent", { id: bad.record.id }, keys.query)).status).toBe(200);
    // An export of envelope filters comes from PostgreSQL (export-routing.ts), so the refused event is in
    // the file; one with free text comes from the index, which does not hold it.
    expect(await exportedIds("")).toEqual([bad.record.id, ...[...first, ...later].map((e) => e.id)]); // 1965 sorts first
    expect(await exportedIds("&format=csv")).toEqual(await exportedIds(""));
    expect(await exportedIds("&query=event")).toEqual([...first, ...later].map((e) => e.id));

    // The reconciler does not count it as missing, so it does not retry it every round.
    const report = await svc.reconciler!.reconcileTenant(keys.tenantId);
    expect(report).toMatchObject({ windowsWithGaps: 0, eventsRepaired: 0, documentsRemoved: 0 });

    // A warning, not an outage: one tenant's event must not flip health for all.
    const h = await waitFor(
      "the refusal warning",
      async () => {
        const j = await healthz();
        return j.warnings?.length && j;
      },
      10_000,
    );
    expect(h.status).toBe("SERVING");
    expect(h.degraded).toBeUndefined();
    expect(h.warnings.join(" ")).toMatch(/1 events refused/);
    expect(await check("auditlog.v1.QueryService")).toBe("SERVING");
  }, 90_000);

  it("(c) a cluster refusing writes holds progress and turns QueryService NOT_SERVING with the reason, until it takes them again", async () => {
    const index = (await indicesOf(client, names)).at(-1);
    expect(index).toMatch(new RegExp(`^${names.prefix}-received-`)); // never an empty name: that would block every index
    await client.indices.putSettings({ index: index!, settings: { "index.blocks.write": true } });
    try {
      const events = Array.from({ length: 5 }, (_, i) => toConnectJson(makeEvent(20 + i, "blocked", Date.now() - 60_000)));
      const r = await call(svc.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);
      expect(r.status).toBe(200); // ingest does not depend on the index
      const h = await waitFor(
        "QueryService NOT_SERVING",
        async () => {
          const j = await healthz();
          return j.degraded?.["auditlog.v1.QueryService"] && j;
        },
        20_000,
      );
      expect(h.status).toBe("SERVING");
      expect(h.degraded["auditlog.v1.QueryService"]).toMatch(/has not moved for \d+ s: 5 events of 1 tenants wait/);
      expect(h.degraded["auditlog.v1.QueryService"]).toMatch(/cluster_block_exception/);
      expect(await check("auditlog.v1.QueryService")).toBe("NOT_SERVING");
      expect(await check("auditlog.v1.IngestService")).toBe("SERVING");
      expect(await check("")).toBe("SERVING");
      const st = (await status()).body;
      expect(st).toMatchObject({ committedPosition: "16", indexedPosition: "11", lagEvents: "5", refusedDocuments: "1" }); // nothing skipped
      // The events the index cannot take yet are in an export from PostgreSQL.
      expect(await exportedIds(`&action=${events[0]!.action}`)).toContain(events[0]!.id);
      expect(await exportedIds("")).toEqual(expect.arrayContaining(events.map((e) => e.id)));
    } finally {
      await client.indices.putSettings({ index: index!, settings: { "index.blocks.write": false } });
    }
    await waitFor("indexing to catch up", async () => (await status()).body.indexedPosition === "16", 60_000);
    await waitFor("QueryService SERVING again", async () => (await check("auditlog.v1.QueryService")) === "SERVING", 20_000);
    expect((await healthz()).degraded).toBeUndefined();
    expect((await status()).body.refusedDocuments).toBe("1");
  }, 120_000);
});
