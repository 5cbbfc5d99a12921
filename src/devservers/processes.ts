// What the local servers we start ourselves (embedded PostgreSQL for
// `npm start` and tests, Elasticsearch for tests, benchmarks and development)
// share: keeping a child from outliving us, ports, liveness of PIDs and
// process groups, and running a server as an unprivileged OS user when we
// are root (neither PostgreSQL nor Elasticsearch runs as root).

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";

/**
 * An `sh` that waits for EOF on a pipe from us and then signals `target` (a
 * PID, or a process group as `-<pgid>`). The pipe closes however we die, even
 * by SIGKILL, when no 'exit' handler runs. The watchdog has its own process
 * group, so a terminal's Ctrl-C does not take it down before it can act.
 * With `killAfterMs`, a target still alive that long after `signal` gets SIGKILL.
 * Kill the returned process (SIGKILL) once the target has been stopped in order.
 */
export function startWatchdog(o: { name: string; target: string; signal: "INT" | "TERM"; killAfterMs?: number }): ChildProcess {
  let script = `read _; kill -${o.signal} "$1" 2>/dev/null;`;
  if (o.killAfterMs !== undefined) {
    const rounds = Math.ceil(o.killAfterMs / 500);
    script += ` i=0; while kill -0 "$1" 2>/dev/null && [ $i -lt ${rounds} ]; do sleep 0.5; i=$((i+1)); done; kill -KILL "$1" 2>/dev/null;`;
  }
  script += " exit 0";
  const wd = spawn("/bin/sh", ["-c", script, o.name, o.target], {
    stdio: ["pipe", "ignore", "ignore"],
    detached: true,
  });
  wd.on("error", () => {}); // no /bin/sh: we lose only the crash safety net
  wd.unref();
  (wd.stdin as unknown as net.Socket | null)?.unref?.();
  wd.stdin?.on("error", () => {}); // EPIPE if the watchdog is gone
  return wd;
}

/** Sends `signal` to `pid`, ignoring a process that is already gone. */
export function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/** Sends `signal` to every process of group `pgid`, ignoring a group that is already gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  signalPid(-pgid, signal);
}

/**
 * True if `pid` exists and is not a zombie (an exited child its new parent
 * has not reaped yet, which kill(0) still reports as alive).
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = readProc(pid, "stat");
  if (stat === undefined) return true; // no /proc: trust kill(0)
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

/** True while the process group has a member that is not a zombie (Linux: from /proc; elsewhere kill(0)). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const members = groupMembers(pgid);
  return members === undefined || members.length > 0;
}

/** Non-zombie PIDs in process group `pgid`, or undefined where /proc is missing. */
export function groupMembers(pgid: number): number[] | undefined {
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return undefined;
  }
  const members: number[] = [];
  for (const e of entries) {
    const stat = readProc(Number(e), "stat");
    if (stat === undefined) continue;
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z") members.push(Number(e));
  }
  return members;
}

/** /proc/<pid>/<file>, or undefined (no such process, or no /proc). */
export function readProc(pid: number, file: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return undefined;
  }
}

/** A port on 127.0.0.1 that was free a moment ago (not one of `avoid`). */
export async function freePort(avoid: number[] = []): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    if (!avoid.includes(port)) return port;
  }
}

export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** The account from /etc/passwd, or undefined if there is none of that name. */
export function lookupOsUser(name: string): OsUser | undefined {
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(":");
  return { name, uid: Number(uid), gid: Number(gid) };
}

export function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Throws `message(dir, mode)` for the first of `dir` and its ancestors that
 * `user` cannot enter: servers started as another user otherwise fail later
 * with errors that do not name the directory.
 */
export async function ensureTraversable(dir: string, user: OsUser, message: (dir: string, mode: string) => string): Promise<void> {
  for (let d = dir; ; d = path.dirname(d)) {
    const st = await fsp.stat(d);
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) throw new Error(message(d, (st.mode & 0o777).toString(8)));
    if (d === path.dirname(d)) return;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
