// Fault 4: clients open exports of many events (GET /v1/export over HTTP and
// ExportEvents over gRPC with grpc-js) and stop reading. The server's RSS
// stays bounded over AUDITLOG_SLOW_CONSUMER_SECONDS (default 20, after a 5 s
// warm-up: growth = highest RSS after the warm-up minus highest RSS during
// it, at most AUDITLOG_SLOW_CONSUMER_MAX_RSS_GROWTH_MB, default 96) and other
// clients are served meanwhile.
import http from "node:http";
import { fromJson } from "@bufbuild/protobuf";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { recordFromEvent } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { type ChildService, startChildService } from "../support/child-service.ts";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { freshDatabase } from "../support/db.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { bearer, loadAuditlogStubs, newClient } from "../../scripts/lib/grpc-client.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys } from "../support/service.ts";
import { appendProducer, envInt, newStats, printReport, rssBytes, sleep, storedStats } from "./harness.ts";

const EVENTS = envInt("AUDITLOG_FAULT_EXPORT_EVENTS", 200_000);
const SECONDS = envInt("AUDITLOG_SLOW_CONSUMER_SECONDS", 20);
// 96 MB: a run without any export grows ~10 MB after the warm-up, two paused
// exports ~70 MB (socket and HTTP/2 buffers, a backend batch, lazy GC); the
// NDJSON of 200k events is ~130 MB, so buffering the file would exceed it.
const MAX_GROWTH_MB = envInt("AUDITLOG_SLOW_CONSUMER_MAX_RSS_GROWTH_MB", 96);
const MB = 1024 * 1024;
/** "http" or "grpc" to open only that export, "none" for neither (a control run); default both. */
const ONLY = process.env.AUDITLOG_SLOW_CONSUMER_ONLY ?? "";

describe("fault: slow consumer of exports", () => {
  let svc: ChildService | null = null;
  let db: { url: string; drop(): Promise<void> } | null = null;
  const cleanups: (() => void)[] = [];

  afterAll(async () => {
    for (const c of cleanups) c();
    await svc?.kill("SIGKILL");
    await db?.drop();
  });

  it(`keeps RSS bounded while exports of ${EVENTS} events are not read`, async () => {
    db = await freshDatabase();
    // No ELASTICSEARCH_URL: the PostgreSQL search backend serves the export.
    svc = await startChildService({ DATABASE_URL: db.url, AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY, ELASTICSEARCH_URL: "" });
    const pid = svc.proc.pid!;
    const tenantId = "slowconsumer";
    const keys = await createTenantWithKeys(svc.url, tenantId);

    // Many events, straight into PostgreSQL (the migrations ran at service start).
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    cleanups.push(() => void pool.end());
    const t0 = Date.now();
    for (let i = 0; i < EVENTS; i += 5000) {
      const items: WriteItem[] = [];
      for (let j = i; j < Math.min(EVENTS, i + 5000); j++) {
        const record = recordFromEvent(fromJson(EventSchema, toConnectJson(makeEvent(j, "bulk")) as never));
        items.push({ tenantId, record, ...sealContent(record) });
      }
      await writeBatch(pool, items);
    }
    const writeMs = Date.now() - t0;

    const samples: number[] = [];
    const sample = async () => samples.push(await rssBytes(pid));
    await sample();
    const baseline = samples[0]!;

    // HTTP/1.1 export: read the headers, then never read the body.
    const httpStatus =
      ONLY === "grpc" || ONLY === "none"
        ? 200
        : await new Promise<number>((resolve, reject) => {
            const req = http.get(
              `${svc!.url}/v1/export?format=ndjson&order=asc`,
              { headers: { authorization: `Bearer ${keys.query}` } },
              (res) => {
                res.pause();
                resolve(res.statusCode ?? 0);
              },
            );
            req.on("error", reject);
            cleanups.push(() => req.destroy());
          });
    // gRPC export (grpc-js): the stream is paused, nothing is consumed.
    const client = newClient(loadAuditlogStubs().QueryService, svc.url);
    cleanups.push(() => client.close());
    let grpcChunks = ONLY === "http" || ONLY === "none" ? 1 : 0;
    let grpcError: string | null = null;
    const call =
      ONLY === "http" || ONLY === "none"
        ? null
        : client.ExportEvents({ format: "EXPORT_FORMAT_NDJSON", order: "SORT_ORDER_ASCENDING" }, bearer(keys.query));
    call?.on("error", (e: Error) => (grpcError = e.message));
    call?.once("data", () => {
      grpcChunks++;
      call.pause(); // one chunk read, then the client stops reading
    });
    cleanups.push(() => call?.cancel());

    // Meanwhile other clients are served: appends and searches.
    const stats = newStats();
    let stopNew = false;
    const producer = appendProducer(
      "other",
      tenantId,
      20,
      stats,
      {
        stopNew: () => stopNew,
        giveUp: () => false,
        target: () => ({ url: svc!.url, ingestKey: keys.ingest, grpcClient: null, generation: 1 }),
      },
      { pauseMs: 100, timeoutMs: 10_000 },
    );
    let searches = 0;
    let searchFailures = 0;
    const searcher = (async () => {
      while (!stopNew) {
        const r = await connectCall(
          svc!.url,
          "auditlog.v1.QueryService/SearchEvents",
          { pageSize: 50, filter: { actions: ["user.login"] } },
          keys.query,
        ).catch(() => ({ status: 0 }));
        if (r.status === 200) searches++;
        else searchFailures++;
        await sleep(200);
      }
    })();

    // Warm-up: the exports fill the socket and HTTP/2 windows, the other
    // clients' garbage piles up; the baseline is the highest RSS of these 5 s.
    for (let i = 0; i < 5; i++) {
      await sleep(1000);
      await sample();
    }
    const warm = Math.max(...samples);
    const warmCount = samples.length;
    const until = Date.now() + SECONDS * 1000;
    while (Date.now() < until) {
      await sleep(1000);
      await sample();
    }
    stopNew = true;
    await Promise.all([producer, searcher]);

    const max = Math.max(...samples.slice(warmCount));
    const growthMb = (max - warm) / MB;
    const s = await storedStats(pool, tenantId, stats.acked);
    printReport(
      {
        fault: "slow-consumer",
        sent: stats.sent.size,
        acknowledged: stats.acked.size,
        stored: s.stored - EVENTS,
        duplicated: s.duplicated,
        lost: s.lost,
      },
      `exported_events=${EVENTS} write_ms=${writeMs} rss_before_exports_mb=${(baseline / MB).toFixed(1)} rss_after_warmup_mb=${(warm / MB).toFixed(1)} rss_max_mb=${(max / MB).toFixed(1)} growth_mb=${growthMb.toFixed(1)} searches=${searches} search_failures=${searchFailures}`,
    );
    process.stderr.write(`slow-consumer rss samples (MB): ${samples.map((b) => (b / MB).toFixed(0)).join(" ")}\n`);

    expect(httpStatus).toBe(200);
    expect(grpcChunks).toBe(1);
    expect(grpcError).toBeNull();
    expect(svc.proc.exitCode).toBeNull();
    expect(growthMb).toBeLessThan(MAX_GROWTH_MB);
    expect(Object.keys(Object.fromEntries(stats.codes))).toEqual(["connect:ok"]);
    expect(stats.acked.size).toBeGreaterThan(0);
    expect(searches).toBeGreaterThan(0);
    expect(searchFailures).toBe(0);
    expect(s.lost).toBe(0);
    expect(s.duplicated).toBe(0);
  });
});
