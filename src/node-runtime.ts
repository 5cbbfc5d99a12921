// How Node runs the service, set up before any of its modules is loaded
// (main.ts), however it was started (npm start, node src/main.ts, the
// container, a supervisor, the bench). Why: docs/PERFORMANCE.md, "Round two: memory".
//
// - V8 heap flags. Node's defaults suit a machine with memory to spare: on
//   64-bit Node 24 the young generation grows to 2 x 64 MB, and the old
//   generation to about four times what survives a full GC. The service's
//   live heap is 40-60 MB, so most of its resident memory was garbage
//   waiting for the next collection. Both sizes are fixed when V8 starts, so
//   they have to be on the command line: the process replaces itself
//   (execve: same pid, same stdio, so a supervisor's signals still reach it)
//   with one started with the flags.
// - glibc's malloc settings, which the C library reads from the environment
//   when a process starts (so they too need the relaunch). Under load the
//   memory outside V8's heap (Buffers, sockets, native code's allocations)
//   was the larger part of the peak: glibc kept freed multi-megabyte Buffers
//   in its main heap (its mmap threshold rises to the size of each large
//   block freed, so later ones came from the heap, where freed memory in the
//   middle stays resident) and gave each busy thread an arena of its own.
//   Linux only; musl and other C libraries ignore these variables.
// - Node's compile cache (module.enableCompileCache). Node strips the types
//   of every .ts module with a WebAssembly compiler that stays loaded (about
//   30 MB resident); with the cache, a module unchanged since an earlier
//   start is read from the cache and the compiler is not even loaded.
//   NODE_COMPILE_CACHE chooses the directory (default: node-compile-cache in
//   the temporary directory), NODE_DISABLE_COMPILE_CACHE=1 turns it off.
import module from "node:module";

/** The flags, each `--name=value` or `--name`. */
export const HEAP_FLAGS: readonly string[] = [
  // Each of the two semi-spaces of the young generation, in MB (default on 64-bit Node 24: up to 64).
  "--max-semi-space-size=16",
  // The old generation may grow to 2 x what survived the last full GC before the next one (default: up to 4 x).
  // 50 (1.5 x) kept 23 MB less at its peak but made full GCs so frequent that
  // ingest cost 39 % more CPU and Append's p99 rose by a third (docs/PERFORMANCE.md, "Round three").
  "--heap-growing-percent=100",
];

/**
 * glibc malloc settings (environment variables) for the relaunched process.
 * Why these values: docs/PERFORMANCE.md, "Round ten: the memory outside V8's heap".
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  // At most 2 arenas (default: 8 per core) for the threads V8 and libuv run beside the event loop.
  MALLOC_ARENA_MAX: "2",
  // Blocks of 128 KB or more are mapped on their own and unmapped when freed. Setting it also fixes it:
  // glibc no longer raises it to the size of each large block freed.
  MALLOC_MMAP_THRESHOLD_: "131072",
};

/**
 * The variables of MALLOC_ENV that `env` does not set (an operator's own
 * value wins); none with AUDITLOG_MALLOC=off or on a system other than
 * Linux (where they mean nothing).
 */
export function missingMallocEnv(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): Record<string, string> {
  const setting = env["AUDITLOG_MALLOC"]?.trim();
  if (setting !== undefined && setting !== "on" && setting !== "off") {
    throw new Error(`AUDITLOG_MALLOC: "on" or "off", not ${JSON.stringify(env["AUDITLOG_MALLOC"])}`);
  }
  if (setting === "off" || platform !== "linux") return {};
  return Object.fromEntries(Object.entries(MALLOC_ENV).filter(([name]) => env[name] === undefined));
}

// `--no-x` sets the same flag as `--x`, so an operator's `--no-x` keeps ours out.
const flagName = (flag: string) =>
  flag
    .replace(/^--(no-)?/, "")
    .split("=")[0]!
    .replaceAll("_", "-");

const FLAG = /^--[a-z][a-z0-9-]*(=[^\s=]+)?$/;

/**
 * The flags wanted: `HEAP_FLAGS`, or AUDITLOG_HEAP_FLAGS when set: `off`
 * (none: Node's defaults) or its own space-separated list of `--name=value`
 * and `--name` (a V8 boolean flag).
 */
export function wantedHeapFlags(setting: string | undefined): readonly string[] {
  if (setting === undefined) return HEAP_FLAGS;
  const value = setting.trim();
  if (value === "off") return [];
  const flags = value.split(/\s+/).filter(Boolean);
  const bad = flags.find((f) => !FLAG.test(f));
  if (bad !== undefined || flags.length === 0) {
    throw new Error(`AUDITLOG_HEAP_FLAGS: "off" or V8 flags as --name=value separated by spaces, not ${JSON.stringify(bad ?? setting)}`);
  }
  return flags;
}

/**
 * The flags of `wanted` that neither the command line (`execArgv`) nor
 * NODE_OPTIONS set: an operator's own value of a flag wins.
 */
export function missingHeapFlags(wanted: readonly string[], execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = new Set([...execArgv, ...(nodeOptions ?? "").split(/\s+/)].filter((a) => a.startsWith("--")).map(flagName));
  return wanted.filter((f) => !given.has(flagName(f)));
}

/**
 * Turns the compile cache on for the modules loaded from now on, then, when
 * heap flags or malloc settings are missing, replaces this process with the
 * same command plus those flags and variables (and the cache's directory in
 * NODE_COMPILE_CACHE, so that the new process reads even main.ts from it).
 * Must run before anything else: nothing of this process survives a
 * relaunch but its pid and standard streams.
 */
export function prepareNodeRuntime(): void {
  const cache = module.enableCompileCache();
  const missing = missingHeapFlags(wantedHeapFlags(process.env["AUDITLOG_HEAP_FLAGS"]), process.execArgv, process.env["NODE_OPTIONS"]);
  const malloc = missingMallocEnv(process.env, process.platform);
  // process.execve is Linux/macOS only (and Node >= 23.11): elsewhere the service runs with Node's defaults.
  if ((missing.length === 0 && Object.keys(malloc).length === 0) || typeof process.execve !== "function" || process.platform === "win32")
    return;
  const env = { ...process.env, ...malloc };
  const cacheOn =
    cache.status === module.constants.compileCacheStatus.ENABLED || cache.status === module.constants.compileCacheStatus.ALREADY_ENABLED;
  if (cacheOn && cache.directory !== undefined) env["NODE_COMPILE_CACHE"] ??= cache.directory;
  try {
    // Its execArgv holds the flags and its environment the variables just added: the new process does not relaunch again.
    process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)], env);
  } catch (err) {
    // Only memory is at stake: serve with Node's defaults rather than not at all.
    const added = [...missing, ...Object.entries(malloc).map(([k, v]) => `${k}=${v}`)].join(" ");
    process.stderr.write(`could not restart with ${added} (${String(err)}); running with Node's defaults\n`);
  }
}
