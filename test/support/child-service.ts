// Runs the service as a separate process (`node src/main.ts`), as a user
// would, so tests can kill it with SIGKILL and start it again.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");

export type ChildService = { url: string; proc: ChildProcess; output: () => string; kill(signal?: NodeJS.Signals): Promise<number | null> };

export async function startChildService(env: Record<string, string>): Promise<ChildService> {
  const proc = spawn(process.execPath, ["src/main.ts"], {
    cwd: ROOT,
    // The access audit off unless asked for, as in service.ts.
    env: { ...process.env, PORT: "0", LOG_LEVEL: "warn", AUDITLOG_ACCESS_AUDIT: "off", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start:\n${out}`)), 60_000);
    const onData = () => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on("data", onData);
    proc.once("exit", (code) => reject(new Error(`service exited with ${code}:\n${out}`)));
  });
  return {
    url,
    proc,
    output: () => out,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      proc.kill(signal);
      return exited;
    },
  };
}
