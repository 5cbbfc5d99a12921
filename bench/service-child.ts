// The service as a child process on a database of its own, for benchmarks
// that measure it from outside (its peak RSS and CPU come from /proc).
// For a diagnosis: AUDITLOG_BENCH_SERVICE_NODE_OPTIONS becomes its
// NODE_OPTIONS (a CPU profile, say), and AUDITLOG_BENCH_SERVICE_STDOUT=FILE
// keeps its standard output (a GC trace through AUDITLOG_HEAP_FLAGS, which
// NODE_OPTIONS does not accept).
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "../src/devservers/processes.ts";
import { procStatusBytes } from "../src/platform/runtime-metrics.ts";
import { parsePidStat } from "./machine-cpu.ts";

const ROOT = join(import.meta.dirname, "..");

export type ServiceChild = {
  url: string;
  operatorKey: string;
  databaseUrl: string;
  pid: number;
  /** SIGTERM, then SIGKILL after 20 s. */
  stop(): Promise<void>;
  /** Stops the service and drops its database (unless `keepDb`). */
  close(): Promise<void>;
};

export type ServiceChildOptions = {
  /** A server where the child's database `name` is created. */
  adminDatabaseUrl: string;
  name: string;
  elasticsearchUrl?: string;
  env?: NodeJS.ProcessEnv;
  keepDb?: boolean;
  log?: (msg: string) => void;
};

export function databaseUrlFor(base: string, name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminQuery(adminDatabaseUrl: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminDatabaseUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function startServiceChild(o: ServiceChildOptions): Promise<ServiceChild> {
  if (!/^[a-z0-9_]+$/.test(o.name)) throw new Error(`database name ${o.name}: lowercase letters, digits and _ only`);
  await adminQuery(o.adminDatabaseUrl, `CREATE DATABASE ${o.name}`);
  const databaseUrl = databaseUrlFor(o.adminDatabaseUrl, o.name);
  const port = await freePort();
  const operatorKey = `bench_${randomBytes(24).toString("hex")}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    HOST: "127.0.0.1",
    AUDITLOG_BOOTSTRAP_KEY: operatorKey,
    LOG_LEVEL: "warn",
    ...o.env,
  };
  // The service's own Node options, apart from the bench's (e.g. heap flags to compare, docs/PERFORMANCE.md).
  const serviceNodeOptions = process.env["AUDITLOG_BENCH_SERVICE_NODE_OPTIONS"];
  if (serviceNodeOptions !== undefined) env["NODE_OPTIONS"] = serviceNodeOptions;
  if (o.elasticsearchUrl) env["ELASTICSEARCH_URL"] = o.elasticsearchUrl;
  else delete env["ELASTICSEARCH_URL"];
  o.log?.(
    `starting the service on 127.0.0.1:${port}, database ${o.name}${o.elasticsearchUrl ? `, Elasticsearch ${o.elasticsearchUrl}` : ""}`,
  );
  const c: ChildProcess = spawn(process.execPath, [join(ROOT, "src", "main.ts")], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let stderrTail = "";
  c.stderr!.on("data", (d: Buffer) => {
    stderrTail = (stderrTail + d.toString()).slice(-4000);
  });
  const stop = async () => {
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, "exit");
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(t);
  };
  const dropDb = () => adminQuery(o.adminDatabaseUrl, `DROP DATABASE IF EXISTS ${o.name} WITH (FORCE)`);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`service did not start within 120 s:\n${stderrTail}`)), 120_000);
      let out = "";
      c.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
      c.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`service exited with ${code}:\n${stderrTail}`));
      });
    });
  } catch (err) {
    await stop();
    if (!o.keepDb) await dropDb();
    throw err;
  }
  // The service's standard output (its logs; --trace-gc lines) to a file for a diagnosis, else dropped.
  const stdoutFile = process.env["AUDITLOG_BENCH_SERVICE_STDOUT"];
  if (stdoutFile) c.stdout!.pipe(createWriteStream(stdoutFile));
  else c.stdout!.resume();
  return {
    url: `http://127.0.0.1:${port}`,
    operatorKey,
    databaseUrl,
    pid: c.pid!,
    stop,
    async close() {
      await stop();
      if (!o.keepDb) await dropDb();
    },
  };
}

export type ProcSample = { hwmKb: number; rssKb: number; cpuSeconds: number };

/** Peak and current RSS and CPU seconds of a process on this machine, or null when it is gone. */
export function procSample(pid: number | null): ProcSample | null {
  if (!pid) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: "VmHWM" | "VmRSS") => (procStatusBytes(status, field) ?? 0) / 1024;
    const { own } = parsePidStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
    return { hwmKb: kb("VmHWM"), rssKb: kb("VmRSS"), cpuSeconds: own };
  } catch {
    return null;
  }
}
