// `npm start` under a supervisor: SIGTERM to the npm process must reach the
// service, which stops its embedded PostgreSQL and exits; nothing may be left
// running (before, npm exited and left node and postgres orphaned).
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { signingKeyFromPem } from "../../src/domain/signing.ts";
import { HEAP_FLAGS, MALLOC_ENV } from "../../src/node-runtime.ts";

const ROOT = join(import.meta.dirname, "..", "..");
/** Shutdown grace of the service (1 s here) plus stopping PostgreSQL, on a busy machine. */
const GONE_WITHIN_MS = 30_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Every process below `root`, from /proc (parent links). */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // The process ended while we looked.
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "(gone)";
  }
}

describe("npm start and signals", () => {
  const dir = mkdtempSync(join(tmpdir(), "auditlog-npm-start-"));
  // The embedded PostgreSQL runs as the 'postgres' OS user, which must enter the directory.
  chmodSync(dir, 0o755);
  let npm: ChildProcess | undefined;
  afterAll(() => {
    if (npm?.pid !== undefined) for (const pid of [npm.pid, ...descendants(npm.pid)]) if (alive(pid)) process.kill(pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("SIGTERM to the npm process stops the service and its embedded PostgreSQL", async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")));
    delete env.DATABASE_URL;
    for (const name of Object.keys(MALLOC_ENV)) delete env[name];
    npm = spawn("npm", ["start"], {
      cwd: ROOT,
      env: {
        ...env,
        PORT: "0",
        AUDITLOG_DATA_DIR: join(dir, "data"),
        AUDITLOG_EMBEDDED_PG_PORT: String(await freePort()),
        AUDITLOG_SHUTDOWN_GRACE_MS: "1000",
        ELASTICSEARCH_URL: "",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    npm.stdout!.on("data", (d) => (out += d));
    npm.stderr!.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => npm!.once("exit", (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`service did not start:\n${out}`)), 120_000);
      npm!.stdout!.on("data", () => {
        if (/listening on http:\/\//.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      npm!.once("exit", (code) => reject(new Error(`npm start exited with ${code}:\n${out}`)));
    });
    // Like the bootstrap key, a checkpoint signing key is made once in the data directory, and its public half is served.
    const keyFile = join(dir, "data", "checkpoint-key.pem");
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const served = await fetch(`${/listening on (http:\/\/\S+)/.exec(out)![1]}/v1/checkpoint-key`);
    expect(served.headers.get("x-auditlog-key-id")).toBe(signingKeyFromPem(readFileSync(keyFile, "utf8")).keyId);
    const tree = descendants(npm.pid!);
    const commands = tree.map(commandOf);
    // The service runs with its heap flags: it replaced itself (same pid, so npm's signal still reaches it) to add them.
    expect(
      commands.some((c) => c.includes("src/main.ts") && HEAP_FLAGS.every((f) => c.includes(f))),
      commands.join("\n"),
    ).toBe(true);
    // ... and its malloc settings, in the environment it replaced itself with.
    const service = tree.find((pid) => commandOf(pid).includes("src/main.ts"))!;
    const environ = readFileSync(`/proc/${service}/environ`, "utf8").split("\0");
    for (const [name, value] of Object.entries(MALLOC_ENV)) expect(environ).toContain(`${name}=${value}`);
    expect(
      commands.some((c) => /\/postgres\b/.test(c)),
      commands.join("\n"),
    ).toBe(true);

    npm.kill("SIGTERM");
    const deadline = Date.now() + GONE_WITHIN_MS;
    while (Date.now() < deadline && (npm.exitCode === null || tree.some(alive))) await new Promise((r) => setTimeout(r, 100));
    const left = tree.filter(alive).map((pid) => `${pid} ${commandOf(pid)}`);
    expect(left, out).toEqual([]);
    expect(await exited).toBe(0);
    expect(out).toContain('"signal":"SIGTERM"');
  });
});
