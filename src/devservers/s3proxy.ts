// Starts a real, throw-away S3-compatible server for tests: s3proxy
// (org.gaul:s3proxy, classifier jar-with-dependencies, from Maven Central)
// on Java 17 with its filesystem backend, in a temporary directory.
//
// The jar is fetched once with Maven (`mvn dependency:copy`) into
// <repo>/.cache/s3proxy/ and reused. Authorization is AWS v2/v4 with a fixed
// identity/credential (S3PROXY_IDENTITY / S3PROXY_CREDENTIAL), the bucket is
// created by the client (ArchiveStore.ensureBucket).
//
// Lifetime as for Elasticsearch (elasticsearch.ts): own process group, a
// watchdog that stops it when we die in any way, SIGTERM then SIGKILL on stop().
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, groupAlive, signalGroup, sleep, startWatchdog } from "./processes.ts";

export const S3PROXY_VERSION = "2.6.0";
export const S3PROXY_IDENTITY = "auditlog-test";
export const S3PROXY_CREDENTIAL = "auditlog-test-secret";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export type RunningS3Proxy = { url: string; port: number; baseDir: string; stop: () => Promise<void> };

/** The jar, downloaded with Maven into the cache on first use (into a temporary directory, then renamed: never seen half-written). */
export function ensureS3ProxyJar(cacheDir = path.join(repoRoot, ".cache", "s3proxy"), version = S3PROXY_VERSION): string {
  const name = `s3proxy-${version}-jar-with-dependencies.jar`;
  const jar = path.join(cacheDir, name);
  if (fs.existsSync(jar)) return jar;
  fs.mkdirSync(cacheDir, { recursive: true });
  const work = fs.mkdtempSync(path.join(cacheDir, ".download-"));
  try {
    const r = spawnSync(
      "mvn",
      ["-q", "-B", "dependency:copy", `-Dartifact=org.gaul:s3proxy:${version}:jar:jar-with-dependencies`, `-DoutputDirectory=${work}`],
      { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" },
    );
    if (r.status !== 0 || !fs.existsSync(path.join(work, name))) {
      throw new Error(`downloading s3proxy ${version} with mvn failed: ${r.error?.message ?? ""}${r.stdout}${r.stderr}`.slice(0, 2000));
    }
    fs.renameSync(path.join(work, name), jar);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return jar;
}

/** A Java 17 (s3proxy 2.x needs 17; newer JDKs are refused by some of its libraries). */
function java17(): string {
  const jvm = "/usr/lib/jvm";
  const dirs = fs.existsSync(jvm) ? fs.readdirSync(jvm).filter((d) => /17/.test(d)) : [];
  for (const d of dirs) {
    const bin = path.join(jvm, d, "bin", "java");
    if (fs.existsSync(bin)) return bin;
  }
  return "java";
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export async function startS3Proxy(opts: { log?: (msg: string) => void; startTimeoutMs?: number } = {}): Promise<RunningS3Proxy> {
  const log = opts.log ?? (() => {});
  const jar = ensureS3ProxyJar();
  const baseDir = await fsp.mkdtemp(path.join(os.tmpdir(), "auditlog-s3proxy-"));
  const port = await freePort();
  const props = path.join(baseDir, "s3proxy.properties");
  const dataDir = path.join(baseDir, "data");
  await fsp.mkdir(dataDir);
  await fsp.writeFile(
    props,
    [
      "jclouds.provider=filesystem",
      `jclouds.filesystem.basedir=${dataDir}`,
      `s3proxy.endpoint=http://127.0.0.1:${port}`,
      "s3proxy.authorization=aws-v2-or-v4",
      `s3proxy.identity=${S3PROXY_IDENTITY}`,
      `s3proxy.credential=${S3PROXY_CREDENTIAL}`,
      "",
    ].join("\n"),
  );
  const out = fs.openSync(path.join(baseDir, "console.log"), "a");
  const child = spawn(java17(), ["-Xmx256m", "-jar", jar, "--properties", props], { detached: true, stdio: ["ignore", out, out] });
  fs.closeSync(out);
  const pgid = child.pid!;
  const watchdog = startWatchdog({ name: "s3proxy-watchdog", target: `-${pgid}`, signal: "TERM", killAfterMs: 5_000 });
  const onExit = () => signalGroup(pgid, "SIGTERM");
  process.once("exit", onExit);
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      process.removeListener("exit", onExit);
      signalGroup(pgid, "SIGTERM");
      for (let i = 0; i < 50 && groupAlive(pgid); i++) await sleep(100);
      if (groupAlive(pgid)) signalGroup(pgid, "SIGKILL");
      watchdog.kill("SIGKILL");
      await fsp.rm(baseDir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const t0 = performance.now();
  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const console = await fsp.readFile(path.join(baseDir, "console.log"), "utf8").catch(() => "");
      await stop();
      throw new Error(`s3proxy did not start on port ${port}: ${console.slice(-2000)}`);
    }
    await sleep(200);
  }
  log(`s3proxy on 127.0.0.1:${port} ready in ${Math.round(performance.now() - t0)} ms`);
  return { url: `http://127.0.0.1:${port}`, port, baseDir, stop };
}
