// Live tail benchmark (QueryService.TailEvents): S subscribers on one
// replica while a producer appends R events/s. Two measured phases after a
// warm-up: all subscribers reading, then the same plus stalled subscribers
// that never read (they must be ended at their buffer bound with
// RESOURCE_EXHAUSTED and a resume position, while the others' latency and
// the server's RSS stay where they were).
//
// The reading subscribers run in worker processes of their own (so that
// decoding 100,000 events/s does not slow the producer's clock) and behave
// like real clients (bench/tail-subscriber.ts): after RESOURCE_EXHAUSTED
// they resume from the position it carries, and every subscriber checks
// that it got each event exactly once (gaps, duplicates). Each phase ends
// when every subscriber has every event of the phase, or after --drain
// seconds. Per phase it prints delivered/expected, gaps, duplicates,
// resumes, send -> delivery and received_at -> delivery percentiles (the
// latter is commit -> delivery plus at most the write transaction, whose
// duration comes from the service's /metrics), the service's RSS (peak,
// end) and the CPU of every process from /proc.
//
//   npx node bench/tail.ts [--subscribers 100] [--rate 1000] [--seconds 20] [--stalled 2] [--max-batch 100]
//     [--workers 2] [--decode full|minimal] [--buffer <events>] [--drain 30]
//     [--database-url postgres://postgres@127.0.0.1:5432/postgres]
//
// --decode minimal: the subscribers decode only each event's id, received_at and
// sequence (bench/tail-minimal-client.ts), for when they share the service's machine.
//
// TAIL_BENCH_PROF=<dir> starts the service and the subscriber processes with --cpu-prof (profiles in
// <dir> when they exit; the subscriber processes' are subscribers-<n>.cpuprofile).
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
import { tailClient } from "./tail-minimal-client.ts";
import { type PhaseCounts, PhaseBook, producerEventId, ResumingSubscriber } from "./tail-subscriber.ts";

const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
const ACTION = "bench.tail";

type WorkerStart = { type: "start"; url: string; key: string; subscribers: number; maxBatch: number; decode: "full" | "minimal" };
type ToWorker =
  | WorkerStart
  | { type: "phase"; phase: number }
  | { type: "drain"; phase: number; events: number; timeoutMs: number }
  | { type: "stop" };
type PhaseReport = PhaseCounts & { type: "report"; send: string; commit: string; behind: number; errors: string[] };

if (process.argv.includes("--worker")) {
  worker();
} else {
  await main();
}

function worker(): void {
  const book = new PhaseBook();
  const subs: ResumingSubscriber[] = [];
  const errors: string[] = [];
  const ac = new AbortController();
  process.on("message", async (m: ToWorker) => {
    if (m.type === "start") {
      const ready: Promise<void>[] = [];
      for (let i = 0; i < m.subscribers; i++) {
        const client = tailClient(m.url, m.decode);
        let onReady!: () => void;
        ready.push(new Promise((r) => (onReady = r)));
        const s = new ResumingSubscriber({
          client,
          authorization: `Bearer ${m.key}`,
          maxBatch: m.maxBatch,
          book,
          signal: ac.signal,
          onReady,
          onError: (e) => errors.length < 20 && errors.push(e),
        });
        subs.push(s);
        void s.run();
      }
      await Promise.all(ready);
      process.send!({ type: "ready" });
    } else if (m.type === "phase") {
      book.current = m.phase;
    } else if (m.type === "drain") {
      const behind = () => subs.filter((s) => (s.deliveredByPhase.get(m.phase) ?? 0) < m.events).length;
      const until = Date.now() + m.timeoutMs;
      while (behind() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      const s = book.of(m.phase);
      const report: PhaseReport = {
        type: "report",
        delivered: s.delivered,
        messages: s.messages,
        gaps: s.gaps,
        duplicates: s.duplicates,
        resumes: s.resumes,
        reconnects: s.reconnects,
        resumeMismatches: s.resumeMismatches,
        send: hdr.encodeIntoCompressedBase64(s.send),
        commit: hdr.encodeIntoCompressedBase64(s.commit),
        behind: behind(),
        errors: errors.splice(0),
      };
      process.send!(report);
    } else if (m.type === "stop") {
      ac.abort();
      setTimeout(() => process.exit(0), 100);
    }
  });
}

/** The service's group-commit transactions so far (from GET /metrics): count, total seconds, count per bucket bound. */
async function commitMetrics(url: string): Promise<{ count: number; sum: number; buckets: Map<number, number> }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = { count: 0, sum: 0, buckets: new Map<number, number>() };
  for (const line of text.split("\n")) {
    if (!line.startsWith("auditlog_commit_duration_seconds") || !line.includes('result="ok"')) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith("auditlog_commit_duration_seconds_sum")) out.sum = value;
    else if (line.startsWith("auditlog_commit_duration_seconds_count")) out.count = value;
    else {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le && le !== "+Inf") out.buckets.set(Number(le), value);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      subscribers: { type: "string", default: "100" },
      rate: { type: "string", default: "1000" },
      seconds: { type: "string", default: "20" },
      stalled: { type: "string", default: "2" },
      workers: { type: "string", default: "2" },
      buffer: { type: "string" },
      drain: { type: "string", default: "30" },
      "max-batch": { type: "string", default: "100" },
      decode: { type: "string", default: "full" },
      "database-url": { type: "string", default: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
    },
  });
  const subscribers = Number(a.subscribers);
  const rate = Number(a.rate);
  const seconds = Number(a.seconds);
  const workers = Number(a.workers);
  const maxBatch = Number(a["max-batch"]);
  const drainMs = Number(a.drain) * 1000;
  const decode = a.decode === "minimal" ? "minimal" : "full";
  const log = (m: string) => console.error(`[tail-bench] ${m}`);

  const svc = await startServiceChild({
    adminDatabaseUrl: a["database-url"]!,
    name: `bench_tail_${randomBytes(4).toString("hex")}`,
    env: {
      ...(process.env.TAIL_BENCH_PROF ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.TAIL_BENCH_PROF}` } : {}),
      AUDITLOG_KEY_MAX_STREAMS: "0",
      ...(a.buffer ? { AUDITLOG_TAIL_BUFFER_EVENTS: a.buffer } : {}),
      AUDITLOG_TAIL_HEARTBEAT_MS: "1000",
    },
    log,
  });
  const children: ReturnType<typeof fork>[] = [];
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

    for (let i = 0; i < workers; i++) {
      const prof = process.env.TAIL_BENCH_PROF;
      const c = fork(import.meta.filename, ["--worker"], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        execArgv: [
          ...process.execArgv,
          ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`, `--cpu-prof-name=subscribers-${i + 1}.cpuprofile`] : []),
        ],
      });
      const share = Math.floor(subscribers / workers) + (i < subscribers % workers ? 1 : 0);
      c.send({ type: "start", url: svc.url, key: queryKey, subscribers: share, maxBatch, decode } satisfies ToWorker);
      children.push(c);
    }
    await Promise.all(children.map((c) => once(c, "message")));
    const toWorkers = (m: ToWorker) => {
      for (const c of children) c.send(m);
    };
    log(`${subscribers} subscribers (max_batch ${maxBatch}, ${decode} decoding) ready in ${workers} worker processes`);

    const ingest = createClient(IngestService, createGrpcTransport({ baseUrl: svc.url }));
    const appendH = newHistogram();
    let n = 0;
    let appendErrors = 0;
    /** Appends `rate` events/s for `ms`, tagged with `phase`: every 10 ms, the events due by then as one Append (not waiting for the previous one). */
    const runProducer = async (ms: number, phase: number): Promise<number> => {
      const start = performance.now();
      const inflight = new Set<Promise<void>>();
      let sent = 0;
      while (performance.now() - start < ms) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate) - sent;
        if (due > 0) {
          const events = Array.from({ length: due }, () => {
            const i = n++;
            const sentAt = wallMs();
            return {
              id: producerEventId(phase, i, sentAt),
              occurredAt: { seconds: BigInt(Math.floor(Date.now() / 1000)) },
              action: ACTION,
              actor: { id: `user-${i % 500}` },
              message: `benchmark event ${i}`,
              metadata: { sentAt, n: i, phase },
            };
          });
          sent += due;
          const t0 = performance.now();
          const p = ingest
            .append({ events }, auth(ingestKey))
            .then(
              () => {
                appendH.recordValue(Math.round((performance.now() - t0) * 1000));
              },
              () => {
                appendErrors++;
              },
            )
            .finally(() => inflight.delete(p));
          inflight.add(p);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      await Promise.all(inflight);
      return sent;
    };

    /** CPU seconds of each process, for a phase's CPU split. */
    const pids = () => [
      ["service", svc.pid],
      ["bench (producer, stalled)", process.pid],
      ...children.map((c, i) => [`subscribers ${i + 1}`, c.pid!] as [string, number]),
    ];
    const cpuNow = () => new Map(pids().map(([name, pid]) => [name as string, procSample(pid as number)?.cpuSeconds ?? 0]));

    const ms = (h: hdr.Histogram, p: number) => (h.getValueAtPercentile(p) / 1000).toFixed(1);
    const runPhase = async (name: string, phase: number) => {
      toWorkers({ type: "phase", phase });
      appendH.reset();
      appendErrors = 0;
      let peakKb = 0;
      const rssTimer = setInterval(() => {
        const s = procSample(svc.pid);
        if (s) peakKb = Math.max(peakKb, s.rssKb);
      }, 250);
      const m0 = await commitMetrics(svc.url);
      const cpu0 = cpuNow();
      const t0 = performance.now();
      const events = await runProducer(seconds * 1000, phase);
      const producedMs = performance.now() - t0;
      const cpu1 = cpuNow();
      const m1 = await commitMetrics(svc.url);
      const endKb = procSample(svc.pid)?.rssKb ?? 0;
      const drainStart = performance.now();
      toWorkers({ type: "drain", phase, events, timeoutMs: drainMs });
      const reports = (await Promise.all(children.map(async (c) => (await once(c, "message"))[0]))) as PhaseReport[];
      clearInterval(rssTimer);
      const drainedMs = performance.now() - drainStart;
      const cpu2 = cpuNow();

      const send = newHistogram();
      const commit = newHistogram();
      const sum = (k: keyof PhaseCounts) => reports.reduce((acc, r) => acc + r[k], 0);
      for (const r of reports) {
        send.add(hdr.decodeFromCompressedBase64(r.send));
        commit.add(hdr.decodeFromCompressedBase64(r.commit));
      }
      const behind = reports.reduce((acc, r) => acc + r.behind, 0);
      const commits = m1.count - m0.count;
      const p99Bucket = [...m1.buckets].find(([le, v]) => v - (m0.buckets.get(le) ?? 0) >= 0.99 * commits)?.[0];
      const errors = reports.flatMap((r) => r.errors);
      console.log(
        `${name}: ${events} events at ${rate}/s for ${(producedMs / 1000).toFixed(1)} s to ${subscribers} subscribers (max_batch ${maxBatch})\n` +
          `  delivered ${sum("delivered")} / expected ${events * subscribers}` +
          `${behind ? ` (${behind} subscribers still behind after the ${drainMs / 1000} s drain)` : ` (all within ${(drainedMs / 1000).toFixed(1)} s after the last append)`}; ` +
          `${(sum("delivered") / Math.max(1, sum("messages"))).toFixed(1)} events per message; ` +
          `gaps ${sum("gaps")}, duplicates ${sum("duplicates")}, resumes ${sum("resumes")} (position != last received: ${sum("resumeMismatches")}), other reconnects ${sum("reconnects")}\n` +
          `  received_at->delivery p50 ${ms(commit, 50)} ms, p99 ${ms(commit, 99)} ms, max ${ms(commit, 100)} ms ` +
          `(commit transactions: ${commits}, mean ${commits ? ((1000 * (m1.sum - m0.sum)) / commits).toFixed(1) : "-"} ms, p99 ${p99Bucket !== undefined ? `<= ${p99Bucket * 1000} ms` : "> 10 s"})\n` +
          `  send->delivery p50 ${ms(send, 50)} ms, p99 ${ms(send, 99)} ms, max ${ms(send, 100)} ms; ` +
          `Append p50 ${ms(appendH, 50)} ms, p99 ${ms(appendH, 99)} ms${appendErrors ? `, ${appendErrors} failed` : ""}\n` +
          `  service RSS peak ${(peakKb / 1024).toFixed(0)} MiB, at the last append ${(endKb / 1024).toFixed(0)} MiB; CPU while producing (% of a core): ` +
          [...cpu1].map(([k, v]) => `${k} ${((100 * (v - (cpu0.get(k) ?? 0))) / (producedMs / 1000)).toFixed(0)}%`).join(", ") +
          `\n  CPU ms per 1,000 events delivered (producing and draining): ` +
          (sum("delivered") === 0
            ? "- (none delivered)"
            : [...cpu2].map(([k, v]) => `${k} ${((1e6 * (v - (cpu0.get(k) ?? 0))) / sum("delivered")).toFixed(1)}`).join(", ")) +
          (errors.length ? `\n  errors and gaps (first of them): ${errors.slice(0, 6).join(" | ")}` : ""),
      );
    };

    // Warm-up, not measured.
    toWorkers({ type: "phase", phase: 0 });
    await runProducer(2000, 0);
    await new Promise((r) => setTimeout(r, 500));

    await runPhase("phase 1 (all reading)", 1);

    // Stalled subscribers: open, take the first heartbeat, then never read.
    const stalledAbort = new AbortController();
    const stalled = Array.from({ length: Number(a.stalled) }, () => {
      const client = createClient(QueryService, createGrpcTransport({ baseUrl: svc.url }));
      return client.tailEvents({ maxBatch }, { ...auth(queryKey), signal: stalledAbort.signal })[Symbol.asyncIterator]();
    });
    for (const s of stalled) await s.next();
    await runPhase(`phase 2 (+${stalled.length} stalled)`, 2);
    // What reached them, then how their streams ended (those still open after 10 s are cancelled).
    setTimeout(() => stalledAbort.abort(), 10_000).unref();
    const ends = await Promise.all(
      stalled.map(async (s) => {
        let got = 0;
        try {
          for (let r = await s.next(); !r.done; r = await s.next()) {
            const it = r.value.item;
            got += it.case === "event" ? 1 : it.case === "batch" ? it.value.events.length : 0;
          }
          return { got, end: "ended without an error" };
        } catch (err) {
          const e = ConnectError.from(err);
          const end = stalledAbort.signal.aborted
            ? "still open (not ended by the server)"
            : `${Code[e.code]}: ${e.rawMessage.slice(0, 160)}`;
          return { got, end };
        }
      }),
    );
    for (const [i, { got, end }] of ends.entries()) console.log(`  stalled subscriber ${i + 1}: ${got} events had reached it, then ${end}`);
  } finally {
    for (const c of children) c.send({ type: "stop" } satisfies ToWorker);
    await svc.close();
  }
}
