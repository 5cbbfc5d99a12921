// Starts a real, throw-away Elasticsearch for tests, benchmarks and local
// development, without Docker and without the internet.
//
// Where it comes from: Elastic publishes its "integ-test-zip" distribution on
// Maven Central (org.elasticsearch.distribution.integ-test-zip:elasticsearch).
// It is real Elasticsearch with security off, but it has no bundled JDK and only
// a handful of modules (transport-netty4, x-pack-core, x-pack-security, apm).
// Notably ABSENT: analysis-common (lowercase/ngram/... token filters,
// custom analyzers beyond `standard`), reindex (_reindex, _update_by_query,
// _delete_by_query), lang-painless (scripts), mapper-extras, data streams,
// ILM, ingest-common. Code that must run against this node cannot use those.
//
// Programmatic use:
//   const es = await startElasticsearch();        // { url, port, dataDir, stop }
//   ...
//   await es.stop();
//
// Restart on the same port and data (fault tests):
//   const a = await startElasticsearch({ dataDir, keepData: true });
//   await a.stop();
//   const b = await startElasticsearch({ dataDir, port: a.port });
//
// CLI: scripts/elasticsearch.ts.
//
// Environment: ES_JAVA_HOME (JDK to use; otherwise the newest JDK >= 17 found
// under /usr/lib/jvm, then JAVA_HOME, then `java` on PATH), ES_JAVA_OPTS
// (appended after the heap flags), AUDITLOG_ES_USER (the account Elasticsearch
// runs as when we are root, default `nobody`: Elasticsearch refuses to run as
// root).
//
// Lifetime: Elasticsearch runs in its own process group (so a terminal's
// Ctrl-C reaches only us and we shut it down in order). It dies with us:
//   * stop() sends SIGTERM to the group, then SIGKILL after `stopTimeoutMs`;
//   * on process 'exit' (normal exit, process.exit(), an uncaught exception)
//     the group gets SIGTERM;
//   * a tiny `sh` watchdog holds a pipe from this process; when this process
//     dies in any way (even SIGKILL) the pipe closes and the watchdog sends
//     SIGTERM, then SIGKILL 10 s later, to the group.
// Limits: if the watchdog is killed too (it has its own process group, so only
// an explicit kill of its PID, or of everything, does that) an orphaned node
// survives until the next startElasticsearch() with the same cacheDir: that
// call stops Elasticsearch process groups whose owner is dead and removes
// their run directories (logs, config, data that was not kept). Killing by
// process group cannot follow a process that leaves the group (Elasticsearch
// does not).

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  ensureTraversable,
  freePort,
  groupAlive,
  groupMembers,
  lookupOsUser,
  type OsUser,
  pidAlive,
  portIsFree,
  runningAsRoot,
  signalGroup as killGroup,
  sleep,
  startWatchdog,
} from "./processes.ts";

export interface StartElasticsearchOptions {
  /** Elasticsearch version of the integ-test-zip on Maven Central. Default 8.19.21. */
  version?: string;
  /** JVM heap, used for -Xms and -Xmx. Default 512m. */
  heap?: string;
  /** Where the distribution is unpacked and runs live. Default <repo>/.cache/elasticsearch/<version>. */
  cacheDir?: string;
  /** HTTP port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** path.data. Default: a fresh directory under <cacheDir>/runs. */
  dataDir?: string;
  /** Keep dataDir on stop(). Default: true when dataDir was given, false otherwise. */
  keepData?: boolean;
  /**
   * JIT with C1 only (-XX:TieredStopAtLevel=1): starts about a third faster on
   * 2 busy cores, but hot paths run slower. For tests, not for benchmarks. Default false.
   */
  fastStartup?: boolean;
  /** Give up waiting for yellow health after this long. Default 120 000 ms. */
  startTimeoutMs?: number;
  /** After SIGTERM, wait this long before SIGKILL. Default 30 000 ms. */
  stopTimeoutMs?: number;
  /** Progress messages (download, unpack, start, ready). Default: none. */
  log?: (msg: string) => void;
}

export interface RunningElasticsearch {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  /** path.data of this node; pass it back (with port) to restart on the same data. */
  dataDir: string;
  /** Where this run's config, logs and console output live (removed by stop()). */
  runDir: string;
  /** The JDK used. */
  javaHome: string;
  /** Milliseconds from spawn to yellow health. */
  startupMs: number;
  /** Process group id of the Elasticsearch processes (CLI launcher + server JVM). */
  pid: number;
  /**
   * SIGTERM the node (or `signal`, e.g. SIGKILL to simulate a crash), SIGKILL
   * after `stopTimeoutMs`, then remove its run dir and (unless kept) its data.
   * Idempotent: later calls return the first call's promise.
   */
  stop: (opts?: { signal?: NodeJS.Signals }) => Promise<void>;
}

export const DEFAULT_ES_VERSION = "8.19.21";
const MIN_JAVA = 17;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export async function startElasticsearch(opts: StartElasticsearchOptions = {}): Promise<RunningElasticsearch> {
  const version = opts.version ?? DEFAULT_ES_VERSION;
  const heap = opts.heap ?? "512m";
  const log = opts.log ?? (() => {});
  const cacheDir = path.resolve(opts.cacheDir ?? path.join(repoRoot, ".cache", "elasticsearch", version));
  const startTimeoutMs = opts.startTimeoutMs ?? 120_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
  const keepData = opts.keepData ?? opts.dataDir !== undefined;

  const javaHome = findJavaHome();
  const runAs = runAsUser();
  await fsp.mkdir(path.join(cacheDir, "runs"), { recursive: true });
  await pruneDeadRuns(path.join(cacheDir, "runs"));
  const distDir = await ensureDistribution(version, cacheDir, javaHome, log);

  const port = opts.port ?? (await freePort());
  if (opts.port !== undefined && !(await portIsFree(opts.port))) {
    throw new Error(`Elasticsearch: port ${opts.port} on 127.0.0.1 is already in use`);
  }
  const transportPort = await freePort([port]);

  // Per-run directory: config copy (the CLI writes a keystore into it), logs, tmp.
  const runDir = await fsp.mkdtemp(path.join(cacheDir, "runs", "run-"));
  await fsp.writeFile(path.join(runDir, "owner.pid"), `${process.pid}\n`);
  const dataDir = path.resolve(opts.dataDir ?? path.join(runDir, "data"));
  const confDir = path.join(runDir, "config");
  const logsDir = path.join(runDir, "logs");
  const tmpDir = path.join(runDir, "tmp");
  try {
    await fsp.cp(path.join(distDir, "config"), confDir, { recursive: true });
    await Promise.all([logsDir, tmpDir, dataDir].map((d) => fsp.mkdir(d, { recursive: true })));
    await fsp.chmod(path.join(confDir, "jvm.options.d"), 0o755).catch(() => {});
    if (runAs) {
      chownTree(runDir, runAs.uid, runAs.gid);
      chownTree(dataDir, runAs.uid, runAs.gid);
      await ensureTraversableBy(cacheDir, runAs);
      await ensureTraversableBy(path.dirname(dataDir), runAs);
    }
  } catch (err) {
    await fsp.rm(runDir, { recursive: true, force: true });
    throw err;
  }

  const settings: Record<string, string> = {
    "cluster.name": "auditlog-dev",
    "node.name": "auditlog-es",
    "network.host": "127.0.0.1",
    "http.port": String(port),
    "transport.port": String(transportPort),
    "discovery.type": "single-node",
    "path.data": dataDir,
    "path.logs": logsDir,
    "xpack.security.enabled": "false",
    "cluster.routing.allocation.disk.threshold_enabled": "false",
    "action.destructive_requires_name": "false",
    "bootstrap.memory_lock": "false",
  };
  // Only set settings whose module is present: unknown settings abort startup.
  if (fs.existsSync(path.join(distDir, "modules", "x-pack-ml"))) settings["xpack.ml.enabled"] = "false";
  if (fs.existsSync(path.join(distDir, "modules", "ingest-geoip"))) settings["ingest.geoip.downloader.enabled"] = "false";
  const args = Object.entries(settings).flatMap(([k, v]) => ["-E", `${k}=${v}`]);

  const consoleLog = path.join(runDir, "console.log");
  const out = fs.openSync(consoleLog, "a");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ES_JAVA_HOME: javaHome,
    ES_JAVA_OPTS: [`-Xms${heap}`, `-Xmx${heap}`, opts.fastStartup ? "-XX:TieredStopAtLevel=1" : "", process.env.ES_JAVA_OPTS ?? ""]
      .filter(Boolean)
      .join(" "),
    ES_PATH_CONF: confDir,
    ES_TMPDIR: tmpDir,
    HOME: runDir,
  };
  delete env.JAVA_HOME; // ES warns about JAVA_HOME and ignores it; avoid the noise

  const url = `http://127.0.0.1:${port}`;
  log(`elasticsearch ${version}: starting on ${url} (java ${javaHome}, heap ${heap}${runAs ? `, as ${runAs.name}` : ""})`);
  const t0 = performance.now();
  const child = spawn(path.join(distDir, "bin", "elasticsearch"), args, {
    cwd: runDir,
    env,
    stdio: ["ignore", out, out],
    detached: true, // own process group: we kill the CLI and the server JVM together
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  fs.closeSync(out);
  const pgid = child.pid;
  if (pgid === undefined) {
    const spawnError = await new Promise<Error>((resolve) => child.once("error", resolve));
    throw new Error(`Elasticsearch: could not start ${path.join(distDir, "bin", "elasticsearch")}: ${spawnError.message}`);
  }
  child.on("error", () => {}); // e.g. a failed kill(); exit is what we act on
  child.unref();
  await fsp.writeFile(path.join(runDir, "es.pgid"), `${pgid}\n`);

  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  const onProcessExit = () => killGroup(pgid, "SIGTERM");
  process.on("exit", onProcessExit);
  const watchdog = startWatchdog({ name: "es-watchdog", target: `-${pgid}`, signal: "TERM", killAfterMs: 10_000 });

  let stopping: Promise<void> | undefined;
  const stop = (stopOpts: { signal?: NodeJS.Signals } = {}): Promise<void> => {
    stopping ??= (async () => {
      killGroup(pgid, stopOpts.signal ?? "SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const killed = await Promise.race([
        exitedPromise.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), stopTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (killed) {
        log(`elasticsearch: no exit ${stopTimeoutMs} ms after SIGTERM, sending SIGKILL`);
        killGroup(pgid, "SIGKILL");
        await exitedPromise;
      }
      // The server JVM is a child of the CLI JVM: wait until the whole group is gone.
      const deadline = Date.now() + 10_000;
      while (groupAlive(pgid)) {
        if (Date.now() > deadline + 10_000) {
          log(`elasticsearch: process group ${pgid} still has members 20 s after exit; giving up waiting`);
          break;
        }
        if (Date.now() > deadline) killGroup(pgid, "SIGKILL");
        await sleep(100);
      }
      watchdog.kill("SIGKILL");
      process.off("exit", onProcessExit);
      await removeRun(runDir, dataDir, keepData);
    })();
    return stopping;
  };

  try {
    await waitForYellow(url, startTimeoutMs, () => exited);
  } catch (err) {
    // Read the output before stop() removes the run directory.
    const tail = readTail(consoleLog, 60);
    await stop().catch(() => {});
    throw new Error(`${(err as Error).message}\n--- last lines of Elasticsearch's output ---\n${tail}`, { cause: err });
  }
  const startupMs = Math.round(performance.now() - t0);
  log(`elasticsearch ${version}: yellow on ${url} after ${(startupMs / 1000).toFixed(1)} s`);
  return { url, port, dataDir, runDir, javaHome, startupMs, pid: pgid, stop };
}

// ---------------------------------------------------------------------------

async function waitForYellow(
  url: string,
  timeoutMs: number,
  exited: () => { code: number | null; signal: NodeJS.Signals | null } | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    const ex = exited();
    if (ex) throw new Error(`Elasticsearch exited during startup (code ${ex.code}, signal ${ex.signal})`);
    try {
      const res = await fetch(`${url}/_cluster/health?wait_for_status=yellow&timeout=2s`, {
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await res.json()) as { status?: string };
      if (res.ok && (body.status === "yellow" || body.status === "green")) return;
      last = `HTTP ${res.status} ${JSON.stringify(body).slice(0, 200)}`;
    } catch (err) {
      last = String((err as Error & { cause?: Error }).cause?.message ?? (err as Error).message);
      await sleep(250);
    }
  }
  throw new Error(`Elasticsearch did not reach yellow health within ${timeoutMs / 1000} s (last: ${last})`);
}

/** Unpacks the distribution once per cache dir, fetching the zip with Maven if needed. */
async function ensureDistribution(version: string, cacheDir: string, javaHome: string, log: (m: string) => void): Promise<string> {
  const distDir = path.join(cacheDir, `elasticsearch-${version}`);
  if (fs.existsSync(path.join(distDir, "bin", "elasticsearch"))) return distDir;

  const work = await fsp.mkdtemp(path.join(cacheDir, ".unpack-"));
  try {
    const artifact = `org.elasticsearch.distribution.integ-test-zip:elasticsearch:${version}:zip`;
    log(`elasticsearch ${version}: fetching ${artifact} with mvn`);
    run("mvn", ["-q", "-B", "dependency:copy", `-Dartifact=${artifact}`, `-DoutputDirectory=${work}`], {
      env: { ...process.env, JAVA_HOME: process.env.JAVA_HOME ?? javaHome },
    });
    const zip = path.join(work, `elasticsearch-${version}.zip`);
    if (!fs.existsSync(zip)) throw new Error(`mvn dependency:copy did not produce ${zip}`);

    log(`elasticsearch ${version}: unpacking into ${distDir}`);
    const out = path.join(work, "x");
    await fsp.mkdir(out);
    unzip(zip, out, javaHome);
    const unpacked = path.join(out, `elasticsearch-${version}`);
    // jar and python's zipfile do not restore Unix modes: make the scripts executable.
    for (const f of await fsp.readdir(path.join(unpacked, "bin"))) {
      if (!f.endsWith(".bat") && !f.endsWith(".exe")) await fsp.chmod(path.join(unpacked, "bin", f), 0o755);
    }
    try {
      await fsp.rename(unpacked, distDir); // atomic: a half-unpacked tree is never seen as ready
    } catch (err) {
      if (!fs.existsSync(path.join(distDir, "bin", "elasticsearch"))) throw err; // else: a concurrent start won
    }
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
  return distDir;
}

/** Unpacks `zip` into `outDir` with unzip if installed, else the JDK's `jar`, else python3's zipfile. */
export function unzip(zip: string, outDir: string, javaHome: string): void {
  if (which("unzip")) return run("unzip", ["-q", zip, "-d", outDir]);
  const jar = path.join(javaHome, "bin", "jar");
  if (fs.existsSync(jar)) return run(jar, ["xf", zip], { cwd: outDir });
  if (which("python3")) return run("python3", ["-m", "zipfile", "-e", zip, outDir]);
  throw new Error("cannot unpack Elasticsearch: need one of unzip, a JDK with bin/jar, or python3");
}

/**
 * The JDK for Elasticsearch: $ES_JAVA_HOME; else the newest JDK (>= 17) under
 * /usr/lib/jvm; else $JAVA_HOME; else the JDK of `java` on PATH.
 */
export function findJavaHome(): string {
  const fromEnv = process.env.ES_JAVA_HOME;
  if (fromEnv) {
    if (!fs.existsSync(path.join(fromEnv, "bin", "java"))) throw new Error(`ES_JAVA_HOME=${fromEnv} has no bin/java`);
    return fromEnv;
  }
  const candidates: { home: string; major: number }[] = [];
  const consider = (home: string | undefined) => {
    if (!home || !fs.existsSync(path.join(home, "bin", "java"))) return;
    const real = fs.realpathSync(home);
    if (candidates.some((c) => c.home === real)) return;
    candidates.push({ home: real, major: javaMajor(real) });
  };
  const jvmRoot = "/usr/lib/jvm";
  if (fs.existsSync(jvmRoot)) for (const d of fs.readdirSync(jvmRoot).sort()) consider(path.join(jvmRoot, d));
  const usable = candidates.filter((c) => c.major >= MIN_JAVA).sort((a, b) => b.major - a.major);
  if (usable.length > 0) return usable[0].home;
  consider(process.env.JAVA_HOME);
  const java = which("java");
  if (java) consider(path.dirname(path.dirname(fs.realpathSync(java))));
  const fallback = candidates.filter((c) => c.major >= MIN_JAVA).sort((a, b) => b.major - a.major);
  if (fallback.length > 0) return fallback[0].home;
  throw new Error(`Elasticsearch needs a JDK >= ${MIN_JAVA}: none under /usr/lib/jvm, JAVA_HOME or PATH (set ES_JAVA_HOME)`);
}

function javaMajor(home: string): number {
  try {
    const release = fs.readFileSync(path.join(home, "release"), "utf8");
    const m = /^JAVA_VERSION="(\d+)(?:\.(\d+))?/m.exec(release);
    if (m) return m[1] === "1" ? Number(m[2]) : Number(m[1]);
  } catch {
    // no release file: ask the binary
  }
  const r = spawnSync(path.join(home, "bin", "java"), ["-version"], { encoding: "utf8" });
  const m = /version "(\d+)(?:\.(\d+))?/.exec(r.stderr ?? "");
  if (!m) return 0;
  return m[1] === "1" ? Number(m[2]) : Number(m[1]);
}

/** Elasticsearch refuses to run as root: pick an unprivileged account when we are root. */
function runAsUser(): OsUser | undefined {
  if (!runningAsRoot()) return undefined;
  const name = process.env.AUDITLOG_ES_USER ?? "nobody";
  const user = lookupOsUser(name);
  if (!user)
    throw new Error(`running as root, Elasticsearch must run as another user, but user '${name}' does not exist (set AUDITLOG_ES_USER)`);
  return user;
}

/** The unprivileged ES user must be able to enter every ancestor of `dir`. */
function ensureTraversableBy(dir: string, user: OsUser): Promise<void> {
  return ensureTraversable(
    dir,
    user,
    (d, mode) =>
      `Elasticsearch runs as '${user.name}', which cannot enter ${d} (mode ${mode}); use another cacheDir/dataDir or chmod o+x ${d}`,
  );
}

function chownTree(p: string, uid: number, gid: number): void {
  fs.chownSync(p, uid, gid);
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return;
  for (const e of fs.readdirSync(p)) chownTree(path.join(p, e), uid, gid);
}

/** Whether a member of group `pgid` is an Elasticsearch JVM of run directory `runDir` (guards against PID reuse). */
function groupRunsIn(pgid: number, runDir: string): boolean {
  for (const pid of groupMembers(pgid) ?? []) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`${runDir}${path.sep}`)) return true;
    } catch {
      // gone
    }
  }
  return false;
}

async function removeRun(runDir: string, dataDir: string, keepData: boolean): Promise<void> {
  const inside = dataDir.startsWith(runDir + path.sep);
  if (!keepData) await fsp.rm(dataDir, { recursive: true, force: true });
  if (!keepData || !inside) {
    await fsp.rm(runDir, { recursive: true, force: true });
  } else {
    for (const e of await fsp.readdir(runDir)) {
      if (path.join(runDir, e) !== dataDir) await fsp.rm(path.join(runDir, e), { recursive: true, force: true });
    }
    await fsp.writeFile(path.join(runDir, "owner.pid"), `${process.pid}\n`);
  }
}

/** Removes run directories whose owning process is gone (crashed runs, failed starts). */
async function pruneDeadRuns(runsDir: string): Promise<void> {
  for (const e of await fsp.readdir(runsDir).catch(() => [] as string[])) {
    const dir = path.join(runsDir, e);
    let owner = NaN;
    try {
      owner = Number((await fsp.readFile(path.join(dir, "owner.pid"), "utf8")).trim());
    } catch {
      // no owner file: a run that died while being set up; treat as dead if older than a minute
      const st = await fsp.stat(dir).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs < 60_000) continue;
    }
    if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) continue;
    // An Elasticsearch that outlived its owner and the watchdog: stop it first.
    const pgid = Number((await fsp.readFile(path.join(dir, "es.pgid"), "utf8").catch(() => "")).trim());
    if (Number.isInteger(pgid) && pgid > 0 && groupRunsIn(pgid, dir)) {
      killGroup(pgid, "SIGTERM");
      const deadline = Date.now() + 15_000;
      while (groupAlive(pgid) && Date.now() < deadline) await sleep(200);
      if (groupAlive(pgid)) killGroup(pgid, "SIGKILL");
    }
    await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

function readTail(file: string, lines: number): string {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd();
    return text ? text.split("\n").slice(-lines).join("\n") : "(no output)";
  } catch {
    return "(no output)";
  }
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const r = spawnSync(cmd, args, { cwd: o.cwd, env: o.env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (r.error) throw new Error(`${cmd} failed to start: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}\n${(r.stdout + r.stderr).slice(-4000)}`);
  }
}
