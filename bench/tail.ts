// Live tail benchmark (QueryService.TailEvents): S subscribers on one
// replica while a producer appends R events/s; each event carries its send
// time, and subscribers (in worker processes of their own, so that parsing
// 100,000 messages/s does not slow the producer's clock) record send ->
// delivery latency, which bounds commit -> delivery from above. Two phases:
// all subscribers reading, then the same plus stalled subscribers that
// never read (they must be ended at their buffer bound while the others'
// latency and the server's RSS stay where they were).
//
// Subscribers ask for batches of up to --max-batch events per message
// (TailEventsRequest.max_batch; 1: one event per message, as old clients).
//
//   npx node bench/tail.ts [--subscribers 100] [--rate 1000] [--seconds 20] [--stalled 2] [--max-batch 100]
//     [--workers 2] [--buffer 1000] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as hdr from "hdr-histogram-js";
import { IngestService } from "../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../gen/auditlog/v1/query_pb.js";
import { connectCall } from "../scripts/lib/connect-json.ts";
import { newHistogram, wallMs } from "./producer.ts";
import { procSample, startServiceChild } from "./service-child.ts";

const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
const ACTION = "bench.tail";

type WorkerStart = { url: string; key: string; subscribers: number; maxBatch: number };
type WorkerReport = { histogram: string; delivered: number; errors: string[] };

if (process.argv.includes("--worker")) {
  // A subscriber process: opens its share of streams, records latencies until told to report.
  process.once("message", async (start: WorkerStart) => {
    let h = newHistogram();
    let delivered = 0;
    const errors: string[] = [];
    const ac = new AbortController();
    const ready: Promise<void>[] = [];
    for (let i = 0; i < start.subscribers; i++) {
      const client = createClient(QueryService, createGrpcTransport({ baseUrl: start.url }));
      let signalReady!: () => void;
      ready.push(new Promise((r) => (signalReady = r)));
      void (async () => {
        try {
          const req = { filter: { actions: [ACTION] }, maxBatch: start.maxBatch };
          for await (const item of client.tailEvents(req, { ...auth(start.key), signal: ac.signal })) {
            if (item.item.case === "heartbeat") {
              signalReady();
              continue;
            }
            const events = item.item.case === "event" ? [item.item.value] : item.item.case === "batch" ? item.item.value.events : [];
            const now = wallMs();
            for (const e of events) {
              const sent = e.event?.metadata?.sentAt;
              if (typeof sent === "number") h.recordValue(Math.max(0, Math.round((now - sent) * 1000)));
              delivered++;
            }
          }
        } catch (err) {
          if (!ac.signal.aborted) errors.push(String(ConnectError.from(err).message));
          signalReady();
        }
      })();
    }
    await Promise.all(ready);
    process.send!("ready");
    process.on("message", (m: string) => {
      if (m === "reset") {
        h = newHistogram();
        delivered = 0;
        return;
      }
      if (m === "report") {
        const report: WorkerReport = { histogram: hdr.encodeIntoCompressedBase64(h), delivered, errors: errors.splice(0) };
        process.send!(report);
      }
      if (m === "stop") {
        ac.abort();
        setTimeout(() => process.exit(0), 100);
      }
    });
  });
} else {
  await main();
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      subscribers: { type: "string", default: "100" },
      rate: { type: "string", default: "1000" },
      seconds: { type: "string", default: "20" },
      stalled: { type: "string", default: "2" },
      workers: { type: "string", default: "2" },
      buffer: { type: "string", default: "1000" },
      "max-batch": { type: "string", default: "100" },
      "database-url": { type: "string", default: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
    },
  });
  const subscribers = Number(a.subscribers);
  const rate = Number(a.rate);
  const seconds = Number(a.seconds);
  const workers = Number(a.workers);
  const maxBatch = Number(a["max-batch"]);
  const log = (m: string) => console.error(`[tail-bench] ${m}`);

  const svc = await startServiceChild({
    adminDatabaseUrl: a["database-url"]!,
    name: `bench_tail_${randomBytes(4).toString("hex")}`,
    env: {
      ...(process.env.TAIL_BENCH_PROF ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.TAIL_BENCH_PROF}` } : {}),
      AUDITLOG_KEY_MAX_STREAMS: "0",
      AUDITLOG_TAIL_BUFFER_EVENTS: a.buffer,
      AUDITLOG_TAIL_HEARTBEAT_MS: "1000",
    },
    log,
  });
  try {
    const tenantId = "bench-tail";
    await connectCall(svc.url, "auditlog.v1.AdminService/CreateTenant", { id: tenantId, name: tenantId }, svc.operatorKey);
    const key = async (scope: string) =>
      (
        await connectCall<{ secret: string }>(
          svc.url,
          "auditlog.v1.AdminService/CreateApiKey",
          { tenantId, name: scope, scopes: [scope] },
          svc.operatorKey,
        )
      ).body.secret;
    const ingestKey = await key("SCOPE_INGEST");
    const queryKey = await key("SCOPE_QUERY");

    const children = Array.from({ length: workers }, (_, i) => {
      const c = fork(import.meta.filename, ["--worker"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      const share = Math.floor(subscribers / workers) + (i < subscribers % workers ? 1 : 0);
      c.send({ url: svc.url, key: queryKey, subscribers: share, maxBatch } satisfies WorkerStart);
      return c;
    });
    await Promise.all(children.map((c) => once(c, "message")));
    log(`${subscribers} subscribers (max_batch ${maxBatch}) ready in ${workers} worker processes`);

    const ingest = createClient(IngestService, createGrpcTransport({ baseUrl: svc.url }));
    const appendH = newHistogram();
    let seq = 0;
    let sent = 0;
    const runProducer = async (ms: number) => {
      // Every 10 ms, the events due by then, as one Append (not waiting for the previous one).
      const start = performance.now();
      const inflight = new Set<Promise<void>>();
      while (performance.now() - start < ms) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate) - (sent - phaseStartSent);
        if (due > 0) {
          const events = Array.from({ length: due }, () => {
            const i = seq++;
            return {
              id: `tail-${i}`,
              occurredAt: { seconds: BigInt(Math.floor(Date.now() / 1000)) },
              action: ACTION,
              actor: { id: `user-${i % 500}` },
              message: `benchmark event ${i}`,
              metadata: { sentAt: wallMs(), n: i },
            };
          });
          sent += due;
          const t0 = performance.now();
          const p = ingest.append({ events }, auth(ingestKey)).then(() => {
            appendH.recordValue(Math.round((performance.now() - t0) * 1000));
            inflight.delete(p);
          });
          inflight.add(p);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      await Promise.all(inflight);
    };
    let phaseStartSent = 0;
    const rssDuring = async (fn: () => Promise<void>) => {
      let peakKb = 0;
      const timer = setInterval(() => {
        const s = procSample(svc.pid);
        if (s) peakKb = Math.max(peakKb, s.rssKb);
      }, 250);
      await fn();
      clearInterval(timer);
      return { peakKb, endKb: procSample(svc.pid)?.rssKb ?? 0 };
    };
    const collect = async () => {
      const merged = newHistogram();
      let delivered = 0;
      const errors: string[] = [];
      for (const c of children) {
        c.send("report");
        const [r] = (await once(c, "message")) as [WorkerReport];
        merged.add(hdr.decodeFromCompressedBase64(r.histogram));
        delivered += r.delivered;
        errors.push(...r.errors);
      }
      for (const c of children) c.send("reset");
      return { merged, delivered, errors };
    };
    const ms = (h: hdr.Histogram, p: number) => (h.getValueAtPercentile(p) / 1000).toFixed(1);
    const report = (name: string, r: Awaited<ReturnType<typeof collect>>, rss: { peakKb: number; endKb: number }, events: number) => {
      console.log(
        `${name}: ${events} events at ${rate}/s to ${subscribers} subscribers (max_batch ${maxBatch}): delivered ${r.delivered} ` +
          `(expected ${events * subscribers}); send->delivery p50 ${ms(r.merged, 50)} ms, p99 ${ms(r.merged, 99)} ms, ` +
          `max ${ms(r.merged, 100)} ms; server RSS peak ${(rss.peakKb / 1024).toFixed(0)} MiB, end ${(rss.endKb / 1024).toFixed(0)} MiB` +
          (r.errors.length ? `; errors: ${r.errors.slice(0, 3).join(" | ")}` : ""),
      );
    };

    // Warm-up, not measured.
    await runProducer(2000);
    await new Promise((r) => setTimeout(r, 500));
    await collect();
    appendH.reset();

    phaseStartSent = sent;
    const rss1 = await rssDuring(() => runProducer(seconds * 1000));
    await new Promise((r) => setTimeout(r, 1000));
    const r1 = await collect();
    report("phase 1 (all reading)", r1, rss1, sent - phaseStartSent);
    console.log(`  Append (batches of ~${rate / 100}) p50 ${ms(appendH, 50)} ms, p99 ${ms(appendH, 99)} ms`);

    // Stalled subscribers: open, take the first heartbeat, then never read.
    const stalled = Array.from({ length: Number(a.stalled) }, () => {
      const client = createClient(QueryService, createGrpcTransport({ baseUrl: svc.url }));
      return client.tailEvents({ filter: { actions: [ACTION] }, maxBatch }, auth(queryKey))[Symbol.asyncIterator]();
    });
    for (const s of stalled) await s.next();
    phaseStartSent = sent;
    appendH.reset();
    const rss2 = await rssDuring(() => runProducer(seconds * 1000));
    await new Promise((r) => setTimeout(r, 1000));
    const r2 = await collect();
    report(`phase 2 (+${stalled.length} stalled)`, r2, rss2, sent - phaseStartSent);
    console.log(`  Append p50 ${ms(appendH, 50)} ms, p99 ${ms(appendH, 99)} ms`);
    for (const [i, s] of stalled.entries()) {
      let n = 0;
      let end = "still open";
      try {
        for (let r = await s.next(); !r.done; r = await s.next()) {
          const it = r.value.item;
          n += it.case === "event" ? 1 : it.case === "batch" ? it.value.events.length : 0;
        }
        end = "ended";
      } catch (err) {
        const e = ConnectError.from(err);
        end = `${Code[e.code]}: ${e.rawMessage.slice(0, 140)}`;
      }
      console.log(`  stalled subscriber ${i + 1}: ${n} events had reached it, then ${end}`);
    }
    for (const c of children) c.send("stop");
  } finally {
    await svc.close();
  }
}
