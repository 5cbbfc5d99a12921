// Metrics and traces, end to end: /metrics is scraped and its values move
// with the calls made; an Append carrying a W3C traceparent is traced as a
// child of the caller's span (server span, then its commit span) over gRPC,
// gRPC-Web and Connect, and its access log line carries the trace id.
import { randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { context, propagation, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AppendRequestSchema, IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type App, startApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/platform/log.ts";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { freshDatabase } from "../support/db.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, type TenantKeys } from "../support/service.ts";
import { bearerInterceptor, TRANSPORTS } from "../support/transports.ts";

type Running = { app: App; lines: Record<string, unknown>[]; stop(): Promise<void> };

async function start(env: Record<string, string>): Promise<Running> {
  const db = await freshDatabase();
  const config = loadConfig({
    PORT: "0",
    AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY,
    LOG_LEVEL: "info",
    AUDITLOG_RECONCILE_INTERVAL_MS: "0",
    ...env,
  });
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  let buffered = "";
  stream.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const parts = buffered.split("\n");
    buffered = parts.pop()!;
    for (const p of parts) if (p) lines.push(JSON.parse(p));
  });
  const app = await startApp({ ...config, databaseUrl: db.url }, createLogger({ level: "info", stream }));
  return {
    app,
    lines,
    async stop() {
      await app.close();
      await db.drop();
    },
  };
}

/** The samples of one metric: labels (as text) -> value. */
async function scrape(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; contentType: string | null }> {
  const res = await fetch(`${url}/metrics`, { headers });
  return { status: res.status, text: await res.text(), contentType: res.headers.get("content-type") };
}

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

async function append(url: string, key: string, events: Record<string, unknown>[]) {
  const r = await connectCall(url, "auditlog.v1.IngestService/Append", { events }, key);
  if (r.status !== 200) throw new Error(`Append: ${JSON.stringify(r.body)}`);
  return r.body as { position: string };
}

describe("GET /metrics with Elasticsearch", () => {
  let svc: Running;
  let tenant: TenantKeys;
  const prefix = `obs-${randomBytes(4).toString("hex")}`;
  const es = inject("elasticsearchUrl");

  beforeAll(async () => {
    svc = await start({ ELASTICSEARCH_URL: es, AUDITLOG_ES_INDEX_PREFIX: prefix });
    tenant = await createTenantWithKeys(svc.app.url, `obs-${randomBytes(3).toString("hex")}`);
  });
  afterAll(async () => {
    await svc?.stop();
    // Only the indices this file created (by their own prefix).
    const res = await fetch(`${es}/_cat/indices/${prefix}-*?h=index&format=json`);
    for (const { index } of (await res.json()) as { index: string }[]) await fetch(`${es}/${index}`, { method: "DELETE" });
  });

  it("serves the Prometheus text format without auth by default", async () => {
    const r = await scrape(svc.app.url);
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.text).toContain("# TYPE auditlog_rpc_requests_total counter");
  });

  it("moves the request counter, the batch histogram and the commit latency with an Append", async () => {
    const before = await scrape(svc.app.url);
    const labels = { service: "auditlog.v1.IngestService", method: "Append", code: "ok" };
    const requests0 = sample(before.text, "auditlog_rpc_requests_total", labels) ?? 0;
    const batches0 = sample(before.text, "auditlog_ingest_batch_events_count") ?? 0;
    const events0 = sample(before.text, "auditlog_ingest_batch_events_sum") ?? 0;

    await append(svc.app.url, tenant.ingest, [makeEvent(1, "m"), makeEvent(2, "m"), makeEvent(3, "m")].map(toConnectJson));
    const bad = await connectCall(svc.app.url, "auditlog.v1.IngestService/Append", { events: [{ id: "" }] }, tenant.ingest);
    expect(bad.status).toBe(400);

    const after = (await scrape(svc.app.url)).text;
    expect(sample(after, "auditlog_rpc_requests_total", labels)).toBe(requests0 + 1);
    expect(sample(after, "auditlog_rpc_requests_total", { ...labels, code: "invalid_argument" })).toBeGreaterThanOrEqual(1);
    expect(sample(after, "auditlog_rpc_duration_seconds_count", labels)).toBe(requests0 + 1);
    expect(sample(after, "auditlog_ingest_batch_events_count")).toBe(batches0 + 1);
    expect(sample(after, "auditlog_ingest_batch_events_sum")).toBe(events0 + 3);
    expect(sample(after, "auditlog_commit_duration_seconds_count", { result: "ok" })).toBe(batches0 + 1);
    expect(sample(after, "auditlog_ingest_pending_events")).toBe(0);
  });

  it("reports the index lag, the indexer and Elasticsearch's health", async () => {
    await append(svc.app.url, tenant.ingest, [makeEvent(10, "lag")].map(toConnectJson));
    // Indexed: the lag gauges come back to zero and the counters count it.
    await expect
      .poll(
        async () => {
          const t = (await scrape(svc.app.url)).text;
          return [
            sample(t, "auditlog_index_lag_events"),
            sample(t, "auditlog_index_tenants_behind"),
            (sample(t, "auditlog_indexed_events_total") ?? 0) >= 4,
          ];
        },
        { timeout: 20_000, interval: 200 },
      )
      .toEqual([0, 0, true]);
    const t = (await scrape(svc.app.url)).text;
    expect(sample(t, "auditlog_index_lag_seconds")).toBe(0);
    expect(sample(t, "auditlog_indexer_leader")).toBe(1);
    expect(sample(t, "auditlog_elasticsearch_up")).toBe(1);
    expect(sample(t, "auditlog_indexer_problem_seconds")).toBe(0);
  });

  it("reports the process: resident memory and its peak, the V8 heap, GC pauses, event-loop delay", async () => {
    // Enough short-lived garbage for young-generation collections, whose pauses the GC histogram records.
    let keep = 0;
    for (let i = 0; i < 200_000; i++) keep += JSON.stringify({ i, s: "x".repeat(64) }).length;
    expect(keep).toBeGreaterThan(0);
    await expect
      .poll(async () => sample((await scrape(svc.app.url)).text, "nodejs_gc_duration_seconds_count", { kind: "minor" }) ?? 0)
      .toBeGreaterThan(0);
    const t = (await scrape(svc.app.url)).text;
    const rss = sample(t, "process_resident_memory_bytes")!;
    const peak = sample(t, "auditlog_process_resident_memory_peak_bytes")!;
    // The test runs in the service's process: its figures are this process's.
    expect(rss).toBeGreaterThan(10 * 1024 * 1024);
    expect(peak).toBeGreaterThanOrEqual(rss);
    expect(peak).toBeGreaterThanOrEqual(process.memoryUsage.rss() / 2);
    expect(sample(t, "nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    expect(sample(t, "nodejs_heap_space_size_used_bytes", { space: "old" })).toBeGreaterThan(0);
    expect(sample(t, "nodejs_eventloop_lag_p99_seconds")).toBeGreaterThanOrEqual(0);
    expect(sample(t, "process_cpu_seconds_total")).toBeGreaterThan(0);
    // The finer GC buckets: a young-generation pause is about a millisecond.
    expect(t).toContain('nodejs_gc_duration_seconds_bucket{le="0.0005",kind="minor"}');
    // The app's families and the process's in one text, each once.
    expect(t.match(/^# TYPE process_resident_memory_bytes /gm)).toHaveLength(1);
  });

  it("reports both PostgreSQL pools and the reconciler's results", async () => {
    const t = (await scrape(svc.app.url)).text;
    for (const pool of ["write", "read"]) {
      expect(sample(t, "auditlog_pg_pool_connections", { pool })).toBeGreaterThanOrEqual(0);
      expect(sample(t, "auditlog_pg_pool_idle_connections", { pool })).toBeGreaterThanOrEqual(0);
      expect(sample(t, "auditlog_pg_pool_waiting_requests", { pool })).toBe(0);
    }
    const clean0 = sample(t, "auditlog_reconcile_tenants_total", { result: "clean" }) ?? 0;
    expect(await svc.app.reconciler!.reconcileAll()).toBe(true);
    const t2 = (await scrape(svc.app.url)).text;
    expect(sample(t2, "auditlog_reconcile_tenants_total", { result: "clean" })).toBe(clean0 + 1);
  });
});

describe("GET /metrics settings", () => {
  it("is refused without the token when AUDITLOG_METRICS_TOKEN is set, and absent with AUDITLOG_METRICS=off", async () => {
    const token = randomBytes(16).toString("hex");
    const guarded = await start({ AUDITLOG_METRICS_TOKEN: token });
    try {
      expect((await scrape(guarded.app.url)).status).toBe(401);
      expect((await scrape(guarded.app.url, { authorization: "Bearer wrong-token-wrong-token" })).status).toBe(401);
      expect((await scrape(guarded.app.url, { authorization: `Bearer ${token}` })).status).toBe(200);
    } finally {
      await guarded.stop();
    }
    const off = await start({ AUDITLOG_METRICS: "off" });
    try {
      expect((await scrape(off.app.url)).status).toBe(404);
    } finally {
      await off.stop();
    }
  });
});

describe("traces", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let svc: Running;
  let tenant: TenantKeys;

  beforeAll(async () => {
    provider.register();
    svc = await start({});
    tenant = await createTenantWithKeys(svc.app.url, `trace-${randomBytes(3).toString("hex")}`);
  });
  afterAll(async () => {
    await svc?.stop();
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  });

  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

  for (const t of TRANSPORTS) {
    it(`makes an Append's commit span a child of the caller's trace over ${t.name}`, async () => {
      const traceId = randomBytes(16).toString("hex");
      const callerSpanId = randomBytes(8).toString("hex");
      exporter.reset();
      const client = createClient(IngestService, t.transport(svc.app.url, [bearerInterceptor(tenant.ingest)]));
      const request = fromJson(AppendRequestSchema, { events: [toConnectJson(makeEvent(1, `tr-${t.protocol}`))] } as JsonValue);
      await client.append(request, { headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } });

      await expect
        .poll(() => exporter.getFinishedSpans().some((s) => s.name === "commit" && s.spanContext().traceId === traceId))
        .toBe(true);
      const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
      const commit = spans.find((s) => s.name === "commit")!;
      // Up the parent chain: commit -> the RPC's server span -> the caller's span.
      const chain: string[] = [];
      let at: ReadableSpan | undefined = commit;
      let top: string | undefined;
      while (at) {
        chain.push(at.name);
        top = parentOf(at);
        at = top ? byId.get(top) : undefined;
      }
      expect(chain).toEqual(["commit", "auditlog.v1.IngestService/Append"]);
      expect(top).toBe(callerSpanId);
      // Authentication and validation belong to the same trace, under the server span.
      const server = spans.find((s) => s.name === "auditlog.v1.IngestService/Append")!;
      for (const name of ["authenticate", "validate"]) {
        expect(parentOf(spans.find((s) => s.name === name)!), name).toBe(server.spanContext().spanId);
      }
      // The batch's own transaction is a trace of its own, linked to the caller's commit span.
      const batch = exporter
        .getFinishedSpans()
        .find((s) => s.name === "commit batch" && s.links.some((l) => l.context.spanId === commit.spanContext().spanId));
      expect(batch).toBeDefined();
      // The access log line of this call carries the trace id.
      const line = svc.lines.find(
        (l) => l.msg === "rpc" && l.procedure === "/auditlog.v1.IngestService/Append" && l.protocol === t.protocol && l.traceId === traceId,
      );
      expect(line).toBeDefined();
    });
  }

  it("continues the caller's trace on GET /v1/export", async () => {
    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    exporter.reset();
    const res = await fetch(`${svc.app.url}/v1/export?format=ndjson`, {
      headers: { authorization: `Bearer ${tenant.query}`, traceparent: `00-${traceId}-${callerSpanId}-01` },
    });
    await res.text();
    expect(res.status).toBe(200);
    await expect
      .poll(
        () =>
          exporter.getFinishedSpans().find((s) => s.spanContext().traceId === traceId && s.name === "HTTP GET")?.parentSpanContext?.spanId,
      )
      .toBe(callerSpanId);
  });
});
