// A hostile tenant against a quiet one: does the quiet tenant's latency stay
// within 2x of its idle value while another tenant sends the worst inputs the
// hardening issue found?
//
//   npm run bench:noisy -- [--elasticsearch-url http://127.0.0.1:9200] [--seconds 30] [--warmup-seconds 5]
//                          [--attacks shards,timestamp,search] [--search-streams 10]
//                          [--tenant-ingest-rate 2000] [--tenant-ingest-burst 2000]
//                          [--tenant-read-rate 500] [--burst-streams 8] [--attacker-nice 19]
//                          [--baseline steady] [--timeline]
//
// Starts the service on a fresh database (like `npm run bench -- --start`),
// then measures tenant "victim" alone for --seconds, and again while tenant
// "attacker" runs (in a process of its own: bench/noisy-attacker.ts), all at once and each in a loop:
//   1. shards:    Append of 1,000 events dated one month apart, from 2100 on;
//   2. search:    --search-streams concurrent searches with a 243-character
//                 query of negated terms over ten 60 KB events of its own;
//   3. timestamp: Append of an event whose occurred_at is out of range
//                 (seconds 9223372035, nanos 1999999999) over gRPC;
//   4. burst:     --burst-streams concurrent loops of Append of 100 small
//                 events and as many of GetEvent, without pause, far
//                 above the tenant's ingest and read rates (set
//                 --tenant-ingest-rate; the read rate has a default): what
//                 is refused RESOURCE_EXHAUSTED shows in the attacker's calls;
//   5. shards-paced: the Appends of 1 at 90 % of --tenant-ingest-rate on a
//                 fixed schedule, none refused;
//   5b. duplicates-paced: the same, but with the same event ids every
//                 time, so each Append after the first is 1,000 duplicates:
//                 the service's work on the request without PostgreSQL's
//                 work of writing them;
//   6. steady:    the tenant at its limits and never over them: Appends of
//                 100 events at 90 % of --tenant-ingest-rate and GetEvents
//                 at 90 % of --tenant-read-rate (none when unset), on a
//                 fixed schedule.
// --baseline ATTACKS adds a phase between the two with those attacks only
// (steady, say), and reports the victim's p99 under attack against that
// phase too: with --baseline steady --attacks burst, what a burst over the
// limits costs the victim beyond what the tenant's own limits allow it to
// cost (the access-control issue's "its value without the burst").
// The victim runs one loop: Append of one event, GetEvent of it, then a
// search that must see it (min_position of the Append), its target's
// events of the last 5 s. With Elasticsearch the search also measures how
// soon the victim's own write is searchable. The loop runs --warmup-seconds
// unmeasured before the idle phase. `--attacks ""` runs the attack phase
// with an attacker that sends nothing: the ratios of two quiet phases, the
// spread of the measurement itself.
// --tenant-ingest-rate/-burst start the service with AUDITLOG_TENANT_INGEST_RATE
// and _BURST (the service's defaults otherwise: unlimited), --tenant-read-rate
// with AUDITLOG_TENANT_READ_RATE (default 500 requests/s).
// --attacker-nice (default 19) is the attacker process's nice value: on this
// one machine its client's own CPU (building and sending requests as fast as
// it can, decoding the refusals) would otherwise take a core from the service
// and PostgreSQL, which an attacker on another machine does not; what the
// service spends on the attacker's calls still competes at normal priority.
// 0 puts the attacker's client on an equal footing (the runs before this
// option). The CPU seconds of the service and of the attacker's process are
// reported for both phases.
// --timeline keeps the start and end of every call of the attack phase,
// the victim's and the attacker's, and reports for each victim operation
// which attacker calls were in flight during its slowest 1 % of calls
// against during all of them, and how long its calls took with each kind
// in flight against without it (bench/call-overlap.ts).
// Figures go to stdout and to --out as JSON.
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { fork } from "node:child_process";
import { once } from "node:events";
import os from "node:os";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as hdr from "hdr-histogram-js";
import { AdminService, Scope } from "../gen/auditlog/v1/admin_pb.js";
import type { EventSchema } from "../gen/auditlog/v1/event_pb.js";
import { IngestService } from "../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../gen/auditlog/v1/query_pb.js";
import { callOverlap, type Durations, type OverlapReport, type TimedCall } from "./call-overlap.ts";
import { type AttackerOptions, type AttackerReport, wallClock } from "./noisy-attacker.ts";
import { type ProcSample, procSample, startServiceChild } from "./service-child.ts";

const ROOT = join(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    "database-url": { type: "string", default: process.env["DATABASE_URL"] || "postgres://postgres@127.0.0.1:5432/test" },
    "elasticsearch-url": { type: "string", default: process.env["ELASTICSEARCH_URL"] || "" },
    seconds: { type: "string", default: "30" },
    "warmup-seconds": { type: "string", default: "5" },
    "search-streams": { type: "string", default: "10" },
    attacks: { type: "string", default: "shards,timestamp,search" },
    "tenant-ingest-rate": { type: "string", default: "" },
    "tenant-ingest-burst": { type: "string", default: "" },
    "tenant-read-rate": { type: "string", default: "" },
    "attacker-nice": { type: "string", default: "19" },
    "burst-streams": { type: "string", default: "8" },
    baseline: { type: "string", default: "" },
    out: { type: "string" },
    "keep-db": { type: "boolean", default: false },
    timeline: { type: "boolean", default: false },
  },
});
const SECONDS = Number(args.seconds);
const WARMUP_SECONDS = Number(args["warmup-seconds"]);
const SEARCH_STREAMS = Number(args["search-streams"]);
const BURST_STREAMS = Number(args["burst-streams"]);
const ATTACKER_NICE = Number(args["attacker-nice"]);
const attackList = (list: string) =>
  new Set(
    list
      .split(",")
      .map((a) => a.trim())
      .filter(Boolean),
  );
const ATTACKS = attackList(args.attacks!);
const BASELINE = attackList(args.baseline!);
const STEADY = 0.9;
const log = (msg: string) => process.stderr.write(`[noisy] ${msg}\n`);

/** Per victim operation: the attacker calls in flight during all its calls and during its slowest 1 %. */
function printOverlap(reports: OverlapReport[]): void {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`.padStart(7);
  const ms = (d: Durations | null) => (d ? `${d.p50.toFixed(1)}/${d.p90.toFixed(1)}` : "-");
  for (const r of reports) {
    process.stdout.write(
      `${r.op}: ${r.slowCalls} slowest of ${r.calls} calls (>= ${r.thresholdMs.toFixed(1)} ms); attacker calls in flight\n`,
    );
    process.stdout.write(
      `  ${"kind".padEnd(32)} ${"all".padStart(7)} ${"slowest".padStart(7)}  ${"p50/p90 ms beside".padStart(17)}  ${"apart".padStart(11)}\n`,
    );
    for (const row of r.rows) {
      process.stdout.write(
        `  ${row.kind.padEnd(32)} ${pct(row.all)} ${pct(row.slow)}  ${ms(row.beside).padStart(17)}  ${ms(row.apart).padStart(11)}\n`,
      );
    }
  }
}

type Ops = "append" | "get" | "search";
/** `calls`: with --timeline, each answered call (kind = the operation). */
type Phase = { histograms: Record<Ops, hdr.Histogram>; errors: Record<string, number>; loops: number; calls: TimedCall[] };
const newHistogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

function bearer(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

const stamp = new Date()
  .toISOString()
  .replace(/\.\d+Z$/, "")
  .replace(/[^0-9]/g, "");
const service = await startServiceChild({
  adminDatabaseUrl: args["database-url"]!,
  name: `auditlog_noisy_${stamp}`,
  elasticsearchUrl: args["elasticsearch-url"] || undefined,
  keepDb: args["keep-db"],
  env: {
    ...(args["tenant-ingest-rate"] ? { AUDITLOG_TENANT_INGEST_RATE: args["tenant-ingest-rate"] } : {}),
    ...(args["tenant-ingest-burst"] ? { AUDITLOG_TENANT_INGEST_BURST: args["tenant-ingest-burst"] } : {}),
    ...(args["tenant-read-rate"] ? { AUDITLOG_TENANT_READ_RATE: args["tenant-read-rate"] } : {}),
  },
  log,
});
const stopAll: (() => void)[] = [];
process.on("SIGINT", () => {
  for (const s of stopAll) s();
  void service.close().then(() => process.exit(130));
});

try {
  const transport = (key: string) => createGrpcTransport({ baseUrl: service.url, interceptors: [bearer(key)] });
  const admin = createClient(AdminService, transport(service.operatorKey));
  const keys: Record<string, string> = {};
  for (const tenant of ["victim", "attacker"]) {
    await admin.createTenant({ id: tenant, name: tenant });
    keys[tenant] = (await admin.createApiKey({ tenantId: tenant, name: "bench", scopes: [Scope.INGEST, Scope.QUERY] })).secret;
  }
  const victimIngest = createClient(IngestService, transport(keys.victim!));
  const victimQuery = createClient(QueryService, transport(keys.victim!));
  const attackerIngest = createClient(IngestService, transport(keys.attacker!));

  // The attacker's large events, for the search attack.
  const big = "x".repeat(6_000);
  await attackerIngest.append({
    events: Array.from({ length: 10 }, (_, i) => ({
      action: "blob.stored",
      occurredAt: timestampFromDate(new Date()),
      actor: { id: `a-${i}` },
      target: { type: "blob", id: `b-${i}` },
      metadata: Object.fromEntries(Array.from({ length: 10 }, (_, k) => [`k${k}`, `${big}${k}`])),
    })),
  });

  const victimEvent = (): MessageInitShape<typeof EventSchema> => ({
    id: randomUUID(),
    action: "victim.touched",
    occurredAt: timestampFromDate(new Date()),
    actor: { id: "v-1" },
    target: { type: "doc", id: randomBytes(4).toString("hex") },
    message: "quiet tenant at work",
  });

  async function victimPhase(name: string, seconds = SECONDS): Promise<Phase> {
    const p: Phase = {
      histograms: { append: newHistogram(), get: newHistogram(), search: newHistogram() },
      errors: {},
      loops: 0,
      calls: [],
    };
    const end = performance.now() + seconds * 1000;
    const time = async <T>(op: Ops, fn: () => Promise<T>): Promise<T | undefined> => {
      const t0 = performance.now();
      const start = wallClock();
      try {
        const out = await fn();
        p.histograms[op].recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        if (args.timeline) p.calls.push({ kind: op, start, end: wallClock() });
        return out;
      } catch (err) {
        const key = `${op}:${err instanceof ConnectError ? Code[err.code] : String(err)}`;
        p.errors[key] = (p.errors[key] ?? 0) + 1;
        return undefined;
      }
    };
    while (performance.now() < end) {
      const ev = victimEvent();
      const res = await time("append", () => victimIngest.append({ events: [ev] }, { timeoutMs: 30_000 }));
      await time("get", () => victimQuery.getEvent({ id: ev.id! }, { timeoutMs: 30_000 }));
      // Of the last 5 s: without a time range the PostgreSQL
      // backend reads all of the victim's events to find the target's (it
      // is a filter on the row, docs/PERFORMANCE.md), so the search would
      // cost more in each phase than in the one before, as the victim's
      // own events accumulate, attack or not.
      await time("search", () =>
        victimQuery.searchEvents(
          {
            filter: {
              actions: ["victim.*"],
              targetIds: [ev.target!.id!],
              occurredAfter: { seconds: ev.occurredAt!.seconds! - 5n, nanos: 0 },
            },
            pageSize: 20,
            minPosition: res?.summary?.position ?? 0n,
          },
          { timeoutMs: 30_000 },
        ),
      );
      p.loops++;
      await new Promise((r) => setTimeout(r, 20));
    }
    log(`${name}: ${p.loops} loops, errors ${JSON.stringify(p.errors)}`);
    return p;
  }

  function attack(attacks: Set<string>): { pid: number; stop: () => Promise<AttackerReport> } {
    const options: AttackerOptions = {
      url: service.url,
      key: keys.attacker!,
      attacks: [...attacks],
      searchStreams: SEARCH_STREAMS,
      burstStreams: BURST_STREAMS,
      steadyIngestRate: STEADY * Number(args["tenant-ingest-rate"] || 0),
      steadyReadRate: STEADY * Number(args["tenant-read-rate"] || 0),
      timeline: args.timeline,
    };
    const child = fork(new URL("./noisy-attacker.ts", import.meta.url), { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    os.setPriority(child.pid!, ATTACKER_NICE);
    child.send(options);
    const stopper = () => child.kill("SIGKILL");
    stopAll.push(stopper);
    return {
      pid: child.pid!,
      async stop() {
        const report = once(child, "message").then(([r]) => r as AttackerReport);
        child.send("stop");
        const result = await report;
        await once(child, "exit");
        return result;
      },
    };
  }

  const describe = (attacks: Set<string>) =>
    [...attacks].map((a) => (a === "search" ? `${SEARCH_STREAMS} searches` : a === "burst" ? `burst x${BURST_STREAMS}` : a)).join(" + ");
  // The victim's figures while the attacker runs `attacks`, with the CPU share of both over that time.
  const attackedPhase = async (name: string, attacks: Set<string>) => {
    log(`${name} phase, ${SECONDS} s (attacker: ${describe(attacks)})`);
    const a = attack(attacks);
    await new Promise((r) => setTimeout(r, 2_000));
    const s0 = procSample(service.pid);
    const a0 = procSample(a.pid);
    const phase = await victimPhase(name);
    const s1 = procSample(service.pid);
    const a1 = procSample(a.pid);
    const { counts, timeline } = await a.stop();
    // Only the victim's calls under attack; the attacker's before them (the 2 s above) count when still in flight.
    const overlap = args.timeline ? callOverlap(phase.calls, timeline) : null;
    return { phase, counts, overlap, service: cpuShare(s0, s1), attacker: cpuShare(a0, a1), rss: s1 };
  };
  const cpuShare = (from: ProcSample | null, to: ProcSample | null) => (from && to ? (to.cpuSeconds - from.cpuSeconds) / SECONDS : null);

  // Unmeasured: the service's first calls compile their code paths, which
  // would count against the idle phase only.
  if (WARMUP_SECONDS > 0) {
    log(`warm-up, ${WARMUP_SECONDS} s`);
    await victimPhase("warm-up", WARMUP_SECONDS);
  }
  log(`idle phase, ${SECONDS} s`);
  const sample0 = procSample(service.pid);
  const idle = await victimPhase("idle");
  const sample1 = procSample(service.pid);
  const baseline = BASELINE.size ? await attackedPhase("baseline", BASELINE) : null;
  const main = await attackedPhase("attack", ATTACKS);
  const attacked = main.phase;
  const attackCounts = main.counts;
  const cpu = {
    serviceIdle: cpuShare(sample0, sample1),
    serviceAttacked: main.service,
    attackerAttacked: main.attacker,
    ...(baseline ? { serviceBaseline: baseline.service, attackerBaseline: baseline.attacker } : {}),
  };

  const pct = (h: hdr.Histogram) => ({
    count: h.totalCount,
    p50: h.getValueAtPercentile(50) / 1000,
    p99: h.getValueAtPercentile(99) / 1000,
    max: h.maxValue / 1000,
  });
  const summary = Object.fromEntries(
    (["append", "get", "search"] as Ops[]).map((op) => {
      const i = pct(idle.histograms[op]);
      const u = pct(attacked.histograms[op]);
      const b = baseline ? pct(baseline.phase.histograms[op]) : null;
      return [
        op,
        {
          idle: i,
          attacked: u,
          p50Ratio: i.p50 ? u.p50 / i.p50 : null,
          p99Ratio: i.p99 ? u.p99 / i.p99 : null,
          ...(b ? { baseline: b, p99RatioToBaseline: b.p99 ? u.p99 / b.p99 : null } : {}),
        },
      ];
    }),
  );
  const result = {
    when: new Date().toISOString(),
    elasticsearch: Boolean(args["elasticsearch-url"]),
    seconds: SECONDS,
    searchStreams: SEARCH_STREAMS,
    attacks: [...ATTACKS],
    baseline: [...BASELINE],
    tenantIngestRate: args["tenant-ingest-rate"] ? Number(args["tenant-ingest-rate"]) : null,
    tenantIngestBurst: args["tenant-ingest-burst"] ? Number(args["tenant-ingest-burst"]) : null,
    tenantReadRate: args["tenant-read-rate"] ? Number(args["tenant-read-rate"]) : null,
    burstStreams: ATTACKS.has("burst") ? BURST_STREAMS : null,
    victim: summary,
    victimErrors: { idle: idle.errors, attacked: attacked.errors, ...(baseline ? { baseline: baseline.phase.errors } : {}) },
    attackerCalls: attackCounts,
    ...(baseline ? { attackerCallsBaseline: baseline.counts } : {}),
    attackerNice: ATTACKER_NICE,
    ...(main.overlap ? { overlap: main.overlap } : {}),
    server: { peakRssMb: main.rss ? main.rss.hwmKb / 1024 : null },
    // Share of one core over each phase.
    cpu,
  };
  const n = (x: number | null | undefined, digits = 1) => (x ?? Number.NaN).toFixed(digits);
  const baseCols = baseline ? ` ${"base p99".padStart(9)} ${"x base".padStart(6)}` : "";
  process.stdout.write(
    `${"op".padEnd(8)} ${"idle p50".padStart(9)} ${"idle p99".padStart(9)} ${"att p50".padStart(9)} ${"att p99".padStart(9)} ${"p99 x".padStart(6)}${baseCols}\n`,
  );
  for (const [op, s] of Object.entries(summary)) {
    const base = baseline ? ` ${n(s.baseline?.p99).padStart(9)} ${n(s.p99RatioToBaseline, 2).padStart(6)}` : "";
    process.stdout.write(
      `${op.padEnd(8)} ${n(s.idle.p50).padStart(9)} ${n(s.idle.p99).padStart(9)} ${n(s.attacked.p50).padStart(9)} ${n(s.attacked.p99).padStart(9)} ${n(s.p99Ratio, 2).padStart(6)}${base}\n`,
    );
  }
  process.stdout.write(`attacker calls: ${JSON.stringify(attackCounts)}\nvictim errors: ${JSON.stringify(result.victimErrors)}\n`);
  if (main.overlap) printOverlap(main.overlap);
  if (baseline) process.stdout.write(`attacker calls in the baseline: ${JSON.stringify(baseline.counts)}\n`);
  const pctOf = (x: number | null) => (x === null ? "?" : `${Math.round(x * 100)}%`);
  process.stdout.write(
    `CPU (share of a core): service idle ${pctOf(cpu.serviceIdle)}, under attack ${pctOf(cpu.serviceAttacked)}; attacker process (nice ${ATTACKER_NICE}) ${pctOf(cpu.attackerAttacked)}${baseline ? `; baseline: service ${pctOf(baseline.service)}, attacker ${pctOf(baseline.attacker)}` : ""}\n`,
  );
  const out = args.out ?? join(ROOT, "bench", "results", `noisy-${result.elasticsearch ? "es" : "pg"}-${stamp}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${out}`);
} finally {
  await service.close();
}
