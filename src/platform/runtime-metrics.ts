// The process's own figures for /metrics: resident memory and its peak, the
// V8 heap by space, garbage-collection pauses, event-loop delay, CPU, open
// file descriptors (prom-client's default metrics, under their usual names,
// so the common Node.js dashboards work as they are). They describe the
// process, not an app, so they live in one registry per process, created on
// first use: its GC observer and event-loop monitor are started once, however
// many apps a process runs (tests run many). Why these: docs/PERFORMANCE.md
// ties the service's memory target and Append's tail to RSS and GC pauses, and
// an operator should be able to watch both without reading /proc by hand.
import { readFileSync } from "node:fs";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";

/**
 * Pauses measured on this service run from about 1 ms (a young-generation
 * collection) to tens of ms (a full one); prom-client's default buckets
 * (1 ms, 10 ms, 100 ms, ...) would put nearly all of them in two buckets.
 */
const GC_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** A memory field (`VmHWM`: peak resident, `VmRSS`: resident now) of a /proc/<pid>/status text, in bytes (null: not there). */
export function procStatusBytes(status: string, field: "VmHWM" | "VmRSS"): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, "m").exec(status);
  return m ? Number(m[1]) * 1024 : null;
}

let registry: Registry | null = null;

export function runtimeRegistry(): Registry {
  if (registry) return registry;
  const r = new Registry();
  collectDefaultMetrics({ register: r, gcDurationBuckets: GC_SECONDS_BUCKETS });
  // Linux only: elsewhere there is no /proc and the gauge is left out.
  if (process.platform === "linux") {
    new Gauge({
      name: "auditlog_process_resident_memory_peak_bytes",
      help: "Highest resident memory of this process since it started (VmHWM): what a scrape interval may miss of process_resident_memory_bytes.",
      registers: [r],
      collect() {
        const peak = procStatusBytes(readFileSync("/proc/self/status", "utf8"), "VmHWM");
        if (peak !== null) this.set(peak);
      },
    });
  }
  registry = r;
  return r;
}
