// The safety net that stops our local servers when the Node process dies is a
// shell one-liner; these run it against real process groups.
import { spawn } from "node:child_process";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, groupAlive, pidAlive, portIsFree, signalGroup, sleep, startWatchdog } from "../../src/devservers/processes.ts";

const groups: number[] = [];
afterEach(() => {
  for (const pgid of groups.splice(0)) signalGroup(pgid, "SIGKILL");
});

/** A process group of a shell and a sleep, optionally ignoring SIGTERM (inherited by the sleep). */
function startGroup(ignoreTerm = false): number {
  const script = `${ignoreTerm ? "trap '' TERM; " : ""}sleep 60 & wait`;
  const child = spawn("/bin/sh", ["-c", script], { detached: true, stdio: "ignore" });
  child.unref();
  groups.push(child.pid!);
  return child.pid!;
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await sleep(50);
  }
  return cond();
}

describe("startWatchdog", () => {
  it("signals the group once the pipe from us closes, not before", async () => {
    const pgid = startGroup();
    const wd = startWatchdog({ name: "test-watchdog", target: `-${pgid}`, signal: "TERM" });
    await sleep(300);
    expect(groupAlive(pgid)).toBe(true);
    wd.stdin!.end(); // what our death does to the pipe
    expect(await waitFor(() => !groupAlive(pgid), 5_000)).toBe(true);
  });

  it("escalates to SIGKILL when the group ignores the first signal", async () => {
    const pgid = startGroup(true);
    const wd = startWatchdog({ name: "test-watchdog", target: `-${pgid}`, signal: "TERM", killAfterMs: 1_000 });
    await sleep(300);
    wd.stdin!.end();
    await sleep(500);
    expect(groupAlive(pgid)).toBe(true); // SIGTERM is ignored
    expect(await waitFor(() => !groupAlive(pgid), 5_000)).toBe(true);
  });

  it("signals a single PID", async () => {
    const child = spawn("sleep", ["60"], { detached: true, stdio: "ignore" });
    groups.push(child.pid!);
    const exited = new Promise((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    const wd = startWatchdog({ name: "test-watchdog", target: String(child.pid), signal: "INT" });
    wd.stdin!.end();
    expect(await exited).toBe("SIGINT");
  });
});

describe("pidAlive", () => {
  it("is false for a zombie, which kill(0) still finds", async () => {
    // The background sleep exits only after its parent has exec'd into a sleep
    // that never reaps it (a child that exits before the exec may be reaped by the shell).
    const child = spawn("/bin/sh", ["-c", "sleep 0.1 & echo $!; exec sleep 5"], { stdio: ["ignore", "pipe", "ignore"], detached: true });
    groups.push(child.pid!);
    const zombie = Number(await new Promise<string>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(String(d)))));
    await sleep(500);
    expect(() => process.kill(zombie, 0)).not.toThrow();
    expect(pidAlive(zombie)).toBe(false);
    expect(pidAlive(child.pid!)).toBe(true);
  });
});

describe("ports", () => {
  it("freePort avoids the given ports and portIsFree sees a listener", async () => {
    const a = await freePort();
    const b = await freePort([a]);
    expect(b).not.toBe(a);
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(a, "127.0.0.1", resolve));
    try {
      expect(await portIsFree(a)).toBe(false);
    } finally {
      await new Promise((resolve) => srv.close(resolve));
    }
    expect(await portIsFree(a)).toBe(true);
  });
});
