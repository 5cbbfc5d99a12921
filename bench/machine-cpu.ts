// Where the machine's CPU went during a phase: the service, this bench's own
// child processes (producers, psql), PostgreSQL, Elasticsearch, and the rest.
// Why: on a machine whose cores the service shares with its database, "is
// ingest bounded by the service or by the machine?" is answered by these
// shares, not by the service's CPU alone (docs/PERFORMANCE.md, "Where each
// target stands"). Linux only (/proc); elsewhere every figure is null.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";

/** USER_HZ, the unit of /proc's CPU times (100 wherever getconf is missing). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds, cumulative since boot (machine) or since each process began. */
export type CpuCounters = {
  /** All cores' busy time (user, nice, system, irq, softirq, steal). */
  machineBusy: number;
  /** All cores' time, busy or idle. */
  machineTotal: number;
  service: number;
  /** This bench process and its ended children that it waited for (producers, psql). */
  bench: number;
  /** Every process named `postgres`, with the backends that ended (the postmaster's waited children). */
  postgres: number;
  /** Every process named `java` (Elasticsearch, when it runs on this machine). */
  java: number;
};

/** Cores' worth of CPU over the interval, by whom; `other` is what none of the named used. */
export type CpuShares = {
  cores: number;
  busyCores: number;
  serviceCores: number;
  benchCores: number;
  postgresCores: number;
  elasticsearchCores: number;
  otherCores: number;
  seconds: number;
};

/** The first line of /proc/stat: busy and total seconds of all cores. */
export function parseProcStat(text: string): { busy: number; total: number } {
  const line = text.split("\n", 1)[0] ?? "";
  const f = line.trim().split(/\s+/);
  if (f[0] !== "cpu") throw new Error(`/proc/stat: first line is not the cpu total: ${JSON.stringify(line)}`);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f.slice(1, 9).map((v) => Number(v ?? 0));
  // guest and guest_nice are already inside user and nice.
  const busy = user! + nice! + system! + irq! + softirq! + (steal ?? 0);
  return { busy: busy / CLK_TCK, total: (busy + idle! + iowait!) / CLK_TCK };
}

/** A process's /proc/<pid>/stat: its name, its own CPU seconds and its waited-for children's. */
export function parsePidStat(text: string): { comm: string; own: number; children: number } {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const f = text.slice(close + 2).split(" "); // f[0] is field 3 (state)
  const n = (i: number) => Number(f[i] ?? 0) / CLK_TCK;
  return { comm: text.slice(open + 1, close), own: n(11) + n(12), children: n(13) + n(14) };
}

function readPidStat(pid: number | string) {
  try {
    return parsePidStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null; // ended between the listing and the read: its time is now its parent's
  }
}

/** Reads the counters now; null where /proc is not there. */
export function readCpuCounters(servicePid: number | null): CpuCounters | null {
  let stat: string;
  try {
    stat = readFileSync("/proc/stat", "utf8");
  } catch {
    return null;
  }
  const machine = parseProcStat(stat);
  let postgres = 0;
  let java = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const p = readPidStat(pid);
    if (p?.comm === "postgres") postgres += p.own + p.children;
    else if (p?.comm === "java") java += p.own + p.children;
  }
  const self = readPidStat("self");
  const service = servicePid === null ? null : readPidStat(servicePid);
  return {
    machineBusy: machine.busy,
    machineTotal: machine.total,
    service: service?.own ?? 0,
    bench: self ? self.own + self.children : 0,
    postgres,
    java,
  };
}

/** The shares between two readings. */
export function cpuShares(a: CpuCounters, b: CpuCounters, cores = os.cpus().length): CpuShares {
  const seconds = (b.machineTotal - a.machineTotal) / cores;
  const c = (x: number) => (seconds > 0 ? x / seconds : 0);
  const busy = c(b.machineBusy - a.machineBusy);
  const service = c(b.service - a.service);
  const bench = c(b.bench - a.bench);
  const postgres = c(b.postgres - a.postgres);
  const es = c(b.java - a.java);
  return {
    cores,
    busyCores: busy,
    serviceCores: service,
    benchCores: bench,
    postgresCores: postgres,
    elasticsearchCores: es,
    otherCores: Math.max(0, busy - service - bench - postgres - es),
    seconds,
  };
}

/** One line for the bench's table: "1.95/2 cores: service 0.93, postgres 0.61, ...". */
export function formatCpuShares(s: CpuShares): string {
  const f = (x: number) => x.toFixed(2);
  const es = s.elasticsearchCores > 0.005 ? `, elasticsearch ${f(s.elasticsearchCores)}` : "";
  return `${f(s.busyCores)}/${s.cores} cores: service ${f(s.serviceCores)}, postgres ${f(s.postgresCores)}, bench ${f(s.benchCores)}${es}, other ${f(s.otherCores)}`;
}
