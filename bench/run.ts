// End-to-end benchmark of the running service: ingest (Ingest and Append),
// the raw COPY baseline, index lag, search, export, server memory and CPU.
// What each figure means and how it is measured: docs/PERFORMANCE.md.
//
//   npm run bench -- --start [--scale 0.1] [--producers 2]          # starts `node src/main.ts` itself
//   npm run bench -- --url http://127.0.0.1:8080 --operator-key $KEY  # an already running service
//
// Options (defaults in brackets):
//   --start                start the service as a child on a fresh database auditlog_bench_<ts>
//                          created on --database-url's server; records its peak RSS and CPU
//   --url URL              the service to measure (without --start); 127.0.0.1 only
//   --operator-key KEY     its AUDITLOG_BOOTSTRAP_KEY (without --start)
//   --server-pid PID       without --start: the service's pid, for RSS/CPU (same machine)
//   --database-url URL     [$DATABASE_URL or postgres://postgres@127.0.0.1:5432/test]: where
//                          --start and the COPY baseline create their databases
//   --elasticsearch-url U  [$ELASTICSEARCH_URL]: given to the started service; enables the index-lag phase
//   --scale F              [1] work scale: ingest runs 50k/200k/800k events times F
//   --producers N          [2] producer processes
//   --streams N            [2] concurrent Ingest streams per producer
//   --stream-events N      [2000] events per Ingest stream (one ack each)
//   --message-events N     [500] events per Ingest message
//   --append-rate R        [1000] events/s for the Append phase, in batches of --append-batch [10]
//   --append-seconds S     [20]
//   --lag-rate R           [10000] events/s for the index-lag phase, batches of --lag-batch [100]
//   --lag-seconds S        [30]
//   --queries N            [200] queries per search shape
//   --phases LIST          [ingest,append,copy,lag,search,export]
//   --phase-timeout S      [900] hard limit for one ingest scale / export
//   --out FILE             [bench/results/<timestamp>.json]
//   --keep-db              keep the databases made by --start and the COPY baseline
import { execFileSync, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import os from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { fromJson } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import * as hdr from "hdr-histogram-js";
import pg from "pg";
import { EventSchema } from "../gen/auditlog/v1/event_pb.js";
import type { StoredRecord } from "../src/domain/event-record.ts";
import { recordFromEvent } from "../src/domain/event-record.ts";
import { chainHash, sealContent } from "../src/domain/hash-chain.ts";
import { microsFromDate } from "../src/domain/timestamp.ts";
import { COPY_EVENTS_SQL, copyEventsText } from "../src/store/event-rows.ts";
import { migrate } from "../src/store/migrate.ts";
import { ensurePartitions } from "../src/store/partitions.ts";
import { connectCall } from "../scripts/lib/connect-json.ts";
import { bearer, type GrpcStub, loadAuditlogStubs, newClient } from "../scripts/lib/grpc-client.ts";
import { benchEventJson, newHistogram, type ProducerReport, type ProducerTask, wallMs } from "./producer.ts";
import { type CpuShares, cpuShares, formatCpuShares, readCpuCounters } from "./machine-cpu.ts";
import { formatMemorySample, MemorySampler } from "./memory-sampler.ts";
import { adminQuery, databaseUrlFor, procSample, type ServiceChild, startServiceChild } from "./service-child.ts";

const ROOT = join(import.meta.dirname, "..");
const GENESIS = "0".repeat(64);

const { values: args } = parseArgs({
  options: {
    start: { type: "boolean", default: false },
    url: { type: "string" },
    "operator-key": { type: "string" },
    "server-pid": { type: "string" },
    "database-url": { type: "string", default: process.env["DATABASE_URL"] || "postgres://postgres@127.0.0.1:5432/test" },
    "elasticsearch-url": { type: "string", default: process.env["ELASTICSEARCH_URL"] || "" },
    scale: { type: "string", default: "1" },
    producers: { type: "string", default: "2" },
    streams: { type: "string", default: "2" },
    "stream-events": { type: "string", default: "2000" },
    "message-events": { type: "string", default: "500" },
    "append-rate": { type: "string", default: "1000" },
    "append-batch": { type: "string", default: "10" },
    "append-seconds": { type: "string", default: "20" },
    "lag-rate": { type: "string", default: "10000" },
    "lag-batch": { type: "string", default: "100" },
    "lag-seconds": { type: "string", default: "30" },
    queries: { type: "string", default: "200" },
    phases: { type: "string", default: "ingest,append,copy,lag,search,export" },
    "phase-timeout": { type: "string", default: "900" },
    out: { type: "string" },
    "keep-db": { type: "boolean", default: false },
  },
});

const num = (name: keyof typeof args, min = 0): number => {
  const n = Number(args[name]);
  if (!Number.isFinite(n) || n < min) fail(`--${name}: not a number >= ${min}`);
  return n;
};
function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

const SCALE = num("scale", 0.0001);
const PRODUCERS = Math.max(1, Math.round(num("producers", 1)));
const STREAMS = Math.max(1, Math.round(num("streams", 1)));
const PHASES = new Set(
  args
    .phases!.split(",")
    .map((s) => s.trim())
    .filter(Boolean),
);
const PHASE_TIMEOUT_MS = num("phase-timeout", 10) * 1000;
const QUERIES = Math.max(1, Math.round(num("queries", 1)));
const BASE_EVENTS = 50_000;
const STAMP = new Date()
  .toISOString()
  .replace(/\.\d+Z$/, "Z")
  .replace(/:/g, "-");
const DB_SUFFIX = STAMP.toLowerCase().replace(/[^0-9a-z]/g, "_");

function localOnly(u: string, what: string): void {
  const host = new URL(u).hostname;
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "[::1]") fail(`${what} must be on 127.0.0.1 (got ${host})`);
}

// ---------------------------------------------------------------- output

type Row = {
  phase: string;
  events: number;
  seconds: number;
  rate: number | null;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  note: string;
};
const rows: Row[] = [];
const results: Record<string, unknown> = {};

const fmt = (v: number | null, digits = 1) =>
  v === null || !Number.isFinite(v) ? "-" : v.toLocaleString("en-US", { maximumFractionDigits: digits });
function printHeader(): void {
  process.stdout.write(
    `${"phase".padEnd(30)} ${"events".padStart(9)} ${"seconds".padStart(8)} ${"rate/s".padStart(10)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"p999 ms".padStart(8)}  note\n`,
  );
}
function addRow(r: Row): void {
  rows.push(r);
  process.stdout.write(
    `${r.phase.padEnd(30)} ${fmt(r.events, 0).padStart(9)} ${fmt(r.seconds, 2).padStart(8)} ${fmt(r.rate, 0).padStart(10)} ${fmt(r.p50, 2).padStart(8)} ${fmt(r.p99, 2).padStart(8)} ${fmt(r.p999, 2).padStart(8)}  ${r.note}\n`,
  );
}
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

/** p50/p99/p999 in ms from a histogram of microseconds. */
function pct(h: hdr.Histogram): { p50: number | null; p99: number | null; p999: number | null; max: number | null; count: number } {
  if (h.totalCount === 0) return { p50: null, p99: null, p999: null, max: null, count: 0 };
  const ms = (p: number) => h.getValueAtPercentile(p) / 1000;
  return { p50: ms(50), p99: ms(99), p999: ms(99.9), max: h.maxValue / 1000, count: h.totalCount };
}

// ---------------------------------------------------------------- the server process

let serverPid: number | null = args["server-pid"] ? Number(args["server-pid"]) : null;
const sample = () => procSample(serverPid);

const sharesNote = (u: { machine: CpuShares | null }) => (u.machine ? `; ${formatCpuShares(u.machine)}` : "");

type Usage = { cpuSeconds: number | null; peakRssMb: number | null; rssMb: number | null; machine: CpuShares | null };
async function measured<T>(fn: () => Promise<T>): Promise<[T, Usage]> {
  const a = sample();
  const cpuA = readCpuCounters(serverPid);
  const out = await fn();
  const cpuB = readCpuCounters(serverPid);
  const b = sample();
  return [
    out,
    {
      cpuSeconds: a && b ? b.cpuSeconds - a.cpuSeconds : null,
      peakRssMb: b ? b.hwmKb / 1024 : null,
      rssMb: b ? b.rssKb / 1024 : null,
      machine: cpuA && cpuB ? cpuShares(cpuA, cpuB) : null,
    },
  ];
}

const createdDbs: string[] = [];
async function createDatabase(name: string): Promise<string> {
  await adminQuery(args["database-url"]!, `CREATE DATABASE ${name}`);
  createdDbs.push(name);
  return databaseUrlFor(args["database-url"]!, name);
}

let service: ServiceChild | null = null;
async function startService(): Promise<{ url: string; operatorKey: string }> {
  service = await startServiceChild({
    adminDatabaseUrl: args["database-url"]!,
    name: `auditlog_bench_${DB_SUFFIX}`,
    elasticsearchUrl: args["elasticsearch-url"] || undefined,
    keepDb: args["keep-db"],
    log,
  });
  serverPid = service.pid;
  return service;
}

async function cleanup(): Promise<void> {
  await service?.close();
  if (args["keep-db"]) {
    if (createdDbs.length) log(`kept databases: ${createdDbs.join(", ")}`);
    return;
  }
  for (const name of createdDbs.splice(0)) {
    await adminQuery(args["database-url"]!, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((e) =>
      log(`could not drop ${name}: ${e}`),
    );
  }
}

// ---------------------------------------------------------------- producers

function runProducers(tasks: ProducerTask[], timeoutMs: number): Promise<ProducerReport[]> {
  return Promise.all(
    tasks.map(
      (task) =>
        new Promise<ProducerReport>((resolve, reject) => {
          const p = fork(join(import.meta.dirname, "producer.ts"), [], {
            execPath: process.execPath,
            stdio: ["ignore", "inherit", "inherit", "ipc"],
          });
          let report: ProducerReport | null = null;
          const timer = setTimeout(() => {
            log(`producer ${task.producer} exceeded ${timeoutMs / 1000} s: killing it`);
            p.kill("SIGKILL");
          }, timeoutMs);
          p.on("message", (m: ProducerReport) => {
            if (m.type === "report") report = m;
          });
          p.once("exit", (code) => {
            clearTimeout(timer);
            if (report) resolve(report);
            else reject(new Error(`producer ${task.producer} exited with ${code} and no report`));
          });
          p.send(task);
        }),
    ),
  );
}

function merge(reports: ProducerReport[]) {
  const h = newHistogram();
  for (const r of reports) if (r.histogram) h.add(hdr.decodeFromCompressedBase64(r.histogram));
  const sum = (k: "sent" | "accepted" | "duplicates" | "rejected" | "conflicts" | "errors" | "acks") =>
    reports.reduce((a, r) => a + r[k], 0);
  const seconds = (Math.max(...reports.map((r) => r.endWallMs)) - Math.min(...reports.map((r) => r.startWallMs))) / 1000;
  const firstError = reports.find((r) => r.firstError)?.firstError ?? null;
  return {
    hist: h,
    seconds,
    sent: sum("sent"),
    accepted: sum("accepted"),
    duplicates: sum("duplicates"),
    rejected: sum("rejected"),
    conflicts: sum("conflicts"),
    errors: sum("errors"),
    acks: sum("acks"),
    firstError,
  };
}

// ---------------------------------------------------------------- phases

type Ctx = { url: string; operatorKey: string; tenantId: string; ingestKey: string; queryKey: string; runId: string };

async function setupTenant(url: string, operatorKey: string): Promise<Ctx> {
  const tenantId = `bench-${randomBytes(4).toString("hex")}`;
  const t = await connectCall(url, "auditlog.v1.AdminService/CreateTenant", { id: tenantId, name: "benchmark" }, operatorKey);
  if (t.status !== 200) throw new Error(`CreateTenant: ${t.status} ${JSON.stringify(t.body)}`);
  const key = async (scopes: string[]) => {
    const r = await connectCall<{ secret: string }>(
      url,
      "auditlog.v1.AdminService/CreateApiKey",
      { tenantId, name: `bench ${scopes.join("+")}`, scopes },
      operatorKey,
    );
    if (r.status !== 200) throw new Error(`CreateApiKey: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.secret;
  };
  return {
    url,
    operatorKey,
    tenantId,
    ingestKey: await key(["SCOPE_INGEST"]),
    queryKey: await key(["SCOPE_QUERY"]),
    runId: randomBytes(3).toString("hex"),
  };
}

const ingestTotals = { events: 0, cpuSeconds: 0, rate16x: null as number | null, events16x: 0 };

async function phaseIngest(ctx: Ctx): Promise<void> {
  const out: Record<string, unknown>[] = [];
  let producerSeed = 0;
  for (const mult of [1, 4, 16]) {
    const total = Math.max(PRODUCERS, Math.round(BASE_EVENTS * mult * SCALE));
    const per = Math.ceil(total / PRODUCERS);
    const tasks: ProducerTask[] = Array.from({ length: PRODUCERS }, (_, i) => ({
      mode: "ingest",
      url: ctx.url,
      key: ctx.ingestKey,
      runId: `${ctx.runId}i${mult}`,
      producer: producerSeed + i,
      events: Math.min(per, total - i * per),
      streamEvents: num("stream-events", 1),
      messageEvents: Math.min(1000, num("message-events", 1)),
      streams: STREAMS,
      deadlineMs: PHASE_TIMEOUT_MS,
    }));
    producerSeed += PRODUCERS;
    const [reports, usage] = await measured(() => runProducers(tasks, PHASE_TIMEOUT_MS + 60_000));
    const m = merge(reports);
    const p = pct(m.hist);
    const rate = m.accepted / m.seconds;
    ingestTotals.events += m.accepted;
    if (usage.cpuSeconds !== null) ingestTotals.cpuSeconds += usage.cpuSeconds;
    if (mult === 16) {
      ingestTotals.rate16x = rate;
      ingestTotals.events16x = m.accepted;
    }
    const cpuPer1k = usage.cpuSeconds !== null && m.accepted ? (usage.cpuSeconds / m.accepted) * 1000 : null;
    addRow({
      phase: `ingest ${mult}x (Ingest stream)`,
      events: m.accepted,
      seconds: m.seconds,
      rate,
      ...p,
      note: `${PRODUCERS}x${STREAMS} streams; ack=stream end->summary${m.errors ? `; ${m.errors} errors: ${m.firstError}` : ""}${cpuPer1k !== null ? `; server ${cpuPer1k.toFixed(3)} CPU s/1k ev` : ""}${sharesNote(usage)}`,
    });
    out.push({
      scale: `${mult}x`,
      requested: total,
      ...m,
      hist: undefined,
      histogram: hdr.encodeIntoCompressedBase64(m.hist),
      eventsPerSecond: rate,
      ackLatencyMs: p,
      server: usage,
      serverCpuSecondsPer1kEvents: cpuPer1k,
    });
  }
  results["ingest"] = out;
}

async function phaseAppend(ctx: Ctx): Promise<void> {
  const rate = num("append-rate", 1);
  const batch = Math.max(1, Math.round(num("append-batch", 1)));
  const seconds = num("append-seconds", 1);
  const [reports, usage] = await measured(() =>
    runProducers(
      [
        {
          mode: "append",
          url: ctx.url,
          key: ctx.ingestKey,
          runId: `${ctx.runId}a`,
          producer: 9000,
          rate,
          batch,
          seconds,
          maxInFlight: 256,
          recordAcks: false,
        },
      ],
      (seconds + 120) * 1000,
    ),
  );
  const m = merge(reports);
  const p = pct(m.hist);
  addRow({
    phase: `append ${rate}/s (batches of ${batch})`,
    events: m.accepted,
    seconds: m.seconds,
    rate: m.accepted / m.seconds,
    ...p,
    note: `open loop, latency from due time${m.accepted / m.seconds < 0.95 * rate ? "; TARGET RATE NOT REACHED" : ""}${m.errors ? `; ${m.errors} errors: ${m.firstError}` : ""}${sharesNote(usage)}`,
  });
  results["append"] = {
    targetRate: rate,
    batch,
    targetSeconds: seconds,
    ...m,
    hist: undefined,
    histogram: hdr.encodeIntoCompressedBase64(m.hist),
    latencyMs: p,
    server: usage,
  };
}

async function phaseCopy(): Promise<void> {
  const n = ingestTotals.events16x || Math.round(BASE_EVENTS * 16 * SCALE);
  const name = `auditlog_bench_copy_${DB_SUFFIX}`;
  const url = await createDatabase(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await migrate(pool);
    await ensurePartitions(pool);
  } finally {
    await pool.end();
  }
  const file = join(os.tmpdir(), `auditlog-bench-copy-${process.pid}.tsv`);
  log(`COPY baseline: generating ${n} rows into ${file}`);
  const ws = createWriteStream(file);
  const tenantId = "bench-copy";
  let head = { sequence: 0n, hash: GENESIS };
  const receivedAt = microsFromDate(new Date());
  const CHUNK = 5000;
  for (let from = 0; from < n; from += CHUNK) {
    const stored: StoredRecord[] = [];
    for (let i = from; i < Math.min(n, from + CHUNK); i++) {
      const record = recordFromEvent(fromJson(EventSchema, benchEventJson("copy", 7777, i) as never));
      const { salt, contentHash } = sealContent(record);
      const link = { tenantId, sequence: head.sequence + 1n, receivedAt, contentHash };
      const hash = chainHash(head.hash, link);
      stored.push({ ...record, ...link, hash, prevHash: head.hash, salt });
      head = { sequence: link.sequence, hash };
    }
    if (!ws.write(copyEventsText(stored))) await once(ws, "drain");
  }
  ws.end();
  await once(ws, "finish");
  const columns = /COPY events \(([^)]*)\)/.exec(COPY_EVENTS_SQL)![1]!;
  const bytes = readFileSync(file).length;
  const cpuA = readCpuCounters(serverPid);
  const t0 = performance.now();
  execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-q", "-c", `\\copy events (${columns}) FROM '${file}'`], {
    stdio: ["ignore", "ignore", "inherit"],
    timeout: PHASE_TIMEOUT_MS,
  });
  const seconds = (performance.now() - t0) / 1000;
  const cpuB = readCpuCounters(serverPid);
  const machine = cpuA && cpuB ? cpuShares(cpuA, cpuB) : null;
  rmSync(file, { force: true });
  const rate = n / seconds;
  const ratio = ingestTotals.rate16x !== null ? ingestTotals.rate16x / rate : null;
  addRow({
    phase: "COPY baseline (psql \\copy)",
    events: n,
    seconds,
    rate,
    p50: null,
    p99: null,
    p999: null,
    note: `${(bytes / n).toFixed(0)} B/row; ingest 16x = ${ratio === null ? "-" : `${(ratio * 100).toFixed(0)}%`} of it${sharesNote({ machine })}`,
  });
  results["copyBaseline"] = { rows: n, seconds, rowsPerSecond: rate, bytesPerRow: bytes / n, ingestRateRatio: ratio, machine };
}

async function indexStatus(
  client: GrpcStub,
  key: string,
): Promise<{ backend: string; committedPosition: string; indexedPosition: string }> {
  return new Promise((resolve, reject) =>
    client["GetIndexStatus"](
      {},
      bearer(key),
      { deadline: Date.now() + 10_000 },
      (err: grpc.ServiceError | null, r: { backend: string; committedPosition: string; indexedPosition: string }) =>
        err ? reject(err) : resolve(r),
    ),
  );
}

/**
 * With Elasticsearch, waits until the index holds everything committed, so
 * the next phase is not measured while the indexer works off the previous
 * phase's backlog; the wait itself is a figure: backlog indexing rate.
 */
async function settleIndex(ctx: Ctx, after: string): Promise<void> {
  const q = newClient(loadAuditlogStubs().QueryService, ctx.url);
  try {
    let s = await indexStatus(q, ctx.queryKey);
    if (!/elastic/i.test(s.backend)) return;
    const from = BigInt(s.indexedPosition);
    const target = BigInt(s.committedPosition);
    if (from >= target) return;
    const t0 = performance.now();
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    while (BigInt(s.indexedPosition) < target && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      s = await indexStatus(q, ctx.queryKey);
    }
    const seconds = (performance.now() - t0) / 1000;
    const events = Number(BigInt(s.indexedPosition) - from);
    const caughtUp = BigInt(s.indexedPosition) >= target;
    addRow({
      phase: `index catch-up after ${after}`,
      events,
      seconds,
      rate: events / seconds,
      p50: null,
      p99: null,
      p999: null,
      note: `backlog left when the ${after} phase ended, indexed before the next phase starts${caughtUp ? "" : "; NOT CAUGHT UP (phase timeout)"}`,
    });
    results[`indexCatchUpAfter_${after}`] = { events, seconds, rate: events / seconds, caughtUp };
  } finally {
    q.close();
  }
}

async function phaseLag(ctx: Ctx): Promise<void> {
  const stubs = loadAuditlogStubs();
  const q = newClient(stubs.QueryService, ctx.url);
  try {
    const st = await indexStatus(q, ctx.queryKey);
    if (!/elastic/i.test(st.backend)) {
      log(`index lag: the service's search backend is ${st.backend}, not Elasticsearch: skipped`);
      results["indexLag"] = { skipped: `backend ${st.backend}` };
      return;
    }
    const rate = num("lag-rate", 1);
    const seconds = num("lag-seconds", 1);
    const batch = Math.max(1, Math.round(num("lag-batch", 1)));
    const samples: [number, bigint][] = [];
    let stop = false;
    let maxPos = 0n;
    const watcher = (async () => {
      const hardEnd = Date.now() + (seconds + 180) * 1000;
      while (Date.now() < hardEnd) {
        const t0 = Date.now();
        try {
          const s = await indexStatus(q, ctx.queryKey);
          samples.push([wallMs(), BigInt(s.indexedPosition)]);
          if (stop && BigInt(s.indexedPosition) >= maxPos) return;
        } catch {
          // keep polling
        }
        await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - t0))));
      }
    })();
    const perProducer = rate / PRODUCERS;
    const [reports, usage] = await measured(() =>
      runProducers(
        Array.from(
          { length: PRODUCERS },
          (_, i): ProducerTask => ({
            mode: "append",
            url: ctx.url,
            key: ctx.ingestKey,
            runId: `${ctx.runId}l`,
            producer: 8000 + i,
            rate: perProducer,
            batch,
            seconds,
            maxInFlight: 64,
            recordAcks: true,
          }),
        ),
        (seconds + 120) * 1000,
      ),
    );
    const acks = reports.flatMap((r) => r.ackPositions.map(([t, p]) => [t, BigInt(p)] as [number, bigint]));
    for (const [, p] of acks) if (p > maxPos) maxPos = p;
    stop = true;
    await watcher;
    const h = newHistogram();
    let unindexed = 0;
    for (const [t, p] of acks) {
      const s = samples.find(([st, ip]) => st >= t && ip >= p);
      if (!s) unindexed++;
      else h.recordValue(Math.max(1, Math.round((s[0] - t) * 1000)));
    }
    const m = merge(reports);
    const pc = pct(h);
    addRow({
      phase: `index lag @${rate}/s`,
      events: m.accepted,
      seconds: m.seconds,
      rate: m.accepted / m.seconds,
      ...pc,
      note: `commit(ack)->indexed_position, polled every 50 ms${m.accepted / m.seconds < 0.95 * rate ? "; TARGET RATE NOT REACHED" : ""}${unindexed ? `; ${unindexed} acks never indexed` : ""}${m.errors ? `; ${m.errors} errors: ${m.firstError}` : ""}`,
    });
    results["indexLag"] = {
      targetRate: rate,
      targetSeconds: seconds,
      batch,
      achievedRate: m.accepted / m.seconds,
      acks: acks.length,
      unindexed,
      lagMs: pc,
      appendLatencyMs: pct(m.hist),
      server: usage,
    };
  } finally {
    q.close();
  }
}

async function phaseSearch(ctx: Ctx): Promise<void> {
  const stubs = loadAuditlogStubs();
  const q = newClient(stubs.QueryService, ctx.url);
  const md = bearer(ctx.queryKey);
  type Resp = { events: unknown[]; nextPageToken: string };
  const search = (req: Record<string, unknown>) =>
    new Promise<Resp>((resolve, reject) =>
      q["SearchEvents"](req, md, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, r: Resp) =>
        err ? reject(err) : resolve(r),
      ),
    );
  const now = Date.now();
  const ts = (ms: number) => ({ seconds: String(Math.floor(ms / 1000)), nanos: 0 });
  const actions = ["user.login", "invoice.billed", "customer.updated", "document.viewed", "role.granted", "settings.updated"];
  const outcomes = ["OUTCOME_SUCCESS", "OUTCOME_FAILURE", "OUTCOME_DENIED"];
  const words = ["refund", "approved", "quarterly", "migration", "anomaly", "suspicious", "renewal", "compliance"];
  const plans = ["free", "pro", "business", "enterprise"];
  // Deep page: walk to page 50 with page_size 20 (events 981-1000), then ask for that page repeatedly.
  let deepToken = "";
  let deepNote = "";
  try {
    let token = "";
    let pages = 0;
    for (; pages < 49; pages++) {
      const r = await search({ pageSize: 20, pageToken: token });
      token = r.nextPageToken;
      if (!token) break;
    }
    if (token) deepToken = token;
    else deepNote = `only ${pages + 1} pages of 20 loaded`;
  } catch (e) {
    deepNote = `walk failed: ${(e as Error).message}`;
  }
  const shapes: { name: string; req: (i: number) => Record<string, unknown> | null }[] = [
    {
      name: "filter only",
      req: (i) => ({ pageSize: 50, filter: { actions: [actions[i % actions.length]], outcomes: [outcomes[i % outcomes.length]] } }),
    },
    {
      name: "filter + time range",
      req: (i) => {
        const end = now - (i % 20) * 3_600_000;
        return {
          pageSize: 50,
          filter: { actions: [actions[i % actions.length]], occurredAfter: ts(end - 3 * 3_600_000), occurredBefore: ts(end) },
        };
      },
    },
    { name: "free text", req: (i) => ({ pageSize: 50, filter: { text: words[i % words.length] } }) },
    {
      name: "metadata key",
      req: (i) => ({ pageSize: 50, filter: { metadata: [{ key: "billing.plan", values: [plans[i % plans.length]] }] } }),
    },
    { name: "deep page (50, size 20)", req: () => (deepToken ? { pageSize: 20, pageToken: deepToken } : null) },
  ];
  const out: Record<string, unknown> = {};
  try {
    for (const shape of shapes) {
      const h = newHistogram();
      let errors = 0;
      let firstError = "";
      let hits = 0;
      const t0 = performance.now();
      const deadline = t0 + 120_000;
      const [, usage] = await measured(async () => {
        for (let i = 0; i < QUERIES && performance.now() < deadline; i++) {
          const req = shape.req(i);
          if (!req) break;
          const s = performance.now();
          try {
            const r = await search(req);
            h.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
            hits += r.events.length;
          } catch (e) {
            errors++;
            firstError ||= (e as Error).message;
          }
        }
      });
      const seconds = (performance.now() - t0) / 1000;
      const p = pct(h);
      addRow({
        phase: `search: ${shape.name}`,
        events: h.totalCount,
        seconds,
        rate: h.totalCount / seconds,
        ...p,
        note: `${h.totalCount} queries, avg ${(hits / Math.max(1, h.totalCount)).toFixed(0)} hits${shape.name.startsWith("deep") && deepNote ? `; ${deepNote}` : ""}${errors ? `; ${errors} errors: ${firstError}` : ""}${sharesNote(usage)}`,
      });
      out[shape.name] = {
        queries: h.totalCount,
        errors,
        firstError: firstError || null,
        latencyMs: p,
        avgHits: hits / Math.max(1, h.totalCount),
        server: usage,
      };
    }
  } finally {
    q.close();
  }
  results["search"] = out;
}

async function phaseExport(ctx: Ctx): Promise<void> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), PHASE_TIMEOUT_MS);
  let lines = 0;
  let bytes = 0;
  const t0 = performance.now();
  let note = "GET /v1/export?format=ndjson&order=asc, body discarded";
  const [, usage] = await measured(async () => {
    try {
      const res = await fetch(`${ctx.url}/v1/export?format=ndjson&order=asc`, {
        headers: { authorization: `Bearer ${ctx.queryKey}` },
        signal: ac.signal,
      });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        bytes += chunk.length;
        for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++;
      }
    } catch (e) {
      note += `; stopped: ${(e as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  });
  const seconds = (performance.now() - t0) / 1000;
  addRow({
    phase: "export ndjson",
    events: lines,
    seconds,
    rate: lines / seconds,
    p50: null,
    p99: null,
    p999: null,
    note: `${(bytes / 1e6 / seconds).toFixed(1)} MB/s; ${note}${sharesNote(usage)}`,
  });
  results["export"] = {
    rows: lines,
    bytes,
    seconds,
    rowsPerSecond: lines / seconds,
    megabytesPerSecond: bytes / 1e6 / seconds,
    server: usage,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  let url: string;
  let operatorKey: string;
  if (args.start) {
    localOnly(args["database-url"]!, "--database-url");
    if (args["elasticsearch-url"]) localOnly(args["elasticsearch-url"], "--elasticsearch-url");
    ({ url, operatorKey } = await startService());
  } else {
    if (!args.url || !args["operator-key"]) fail("give --start, or --url and --operator-key");
    url = args.url.replace(/\/$/, "");
    operatorKey = args["operator-key"];
  }
  localOnly(url, "--url");
  const startedAt = new Date().toISOString();
  const ctx = await setupTenant(url, operatorKey);
  log(`tenant ${ctx.tenantId}; scale ${SCALE}; ${PRODUCERS} producers; phases ${[...PHASES].join(",")}`);
  printHeader();
  const memory = new MemorySampler(url);
  memory.start();
  const run = async (name: string, fn: () => Promise<void>) => {
    if (!PHASES.has(name)) return;
    memory.phase = name;
    try {
      await fn();
    } catch (e) {
      log(`phase ${name} failed: ${(e as Error).stack ?? e}`);
      results[`${name}Error`] = String((e as Error).message ?? e);
    }
  };
  await run("ingest", () => phaseIngest(ctx));
  await run("ingest", () => settleIndex(ctx, "ingest"));
  await run("append", () => phaseAppend(ctx));
  await run("copy", () => phaseCopy());
  await run("lag", () => phaseLag(ctx));
  await run("search", () => phaseSearch(ctx));
  await run("export", () => phaseExport(ctx));

  memory.phase = "end";
  await memory.stop();
  const fin = sample();
  const server = {
    pid: serverPid,
    peakRssMb: fin ? fin.hwmKb / 1024 : null,
    rssMb: fin ? fin.rssKb / 1024 : null,
    highestSampledMemory: memory.highest,
    memorySamples: { taken: memory.samples, failed: memory.failures },
    cpuSecondsTotal: fin?.cpuSeconds ?? null,
    ingestEvents: ingestTotals.events,
    cpuSecondsPer1kIngested: fin && ingestTotals.events ? (ingestTotals.cpuSeconds / ingestTotals.events) * 1000 : null,
  };
  addRow({
    phase: "server (peak RSS, CPU)",
    events: ingestTotals.events,
    seconds: ingestTotals.cpuSeconds,
    rate: null,
    p50: null,
    p99: null,
    p999: null,
    note:
      (fin
        ? `peak RSS ${server.peakRssMb!.toFixed(0)} MB; ${server.cpuSecondsPer1kIngested?.toFixed(3) ?? "-"} CPU s per 1k ingested (seconds column = server CPU s in ingest)`
        : "no server pid (use --start or --server-pid)") +
      (memory.highest ? `; ${formatMemorySample(memory.highest)}` : "") +
      (memory.failures ? `; ${memory.failures} of ${memory.samples + memory.failures} /metrics samples failed` : ""),
  });
  results["server"] = server;

  const file = args.out ?? join(ROOT, "bench", "results", `${STAMP}.json`);
  mkdirSync(dirname(file), { recursive: true });
  const doc = {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? "",
      memoryGb: os.totalmem() / 2 ** 30,
      loadavgAtEnd: os.loadavg(),
      node: process.version,
    },
    options: {
      ...args,
      "operator-key": undefined,
      started: !!args.start,
      scale: SCALE,
      producers: PRODUCERS,
      streams: STREAMS,
      baseEvents: BASE_EVENTS,
    },
    rows,
    results,
  };
  writeFileSync(file, JSON.stringify(doc, null, 2) + "\n");
  log(`results: ${file}`);
}

let exiting = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (exiting) return;
    exiting = true;
    log(`${sig}: stopping`);
    void cleanup().finally(() => process.exit(130));
  });
}

main()
  .then(() => cleanup())
  .then(() => process.exit(0))
  .catch(async (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    await cleanup().catch(() => undefined);
    process.exit(1);
  });
