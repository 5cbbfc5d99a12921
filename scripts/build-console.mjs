// prestart/pretest hook: build the web console (console/ -> console/dist)
// when the build is missing or older than any of its sources, so that
// `npm start` on a fresh clone serves it with no extra command. Otherwise it
// only stats files. `--force` always builds (npm run build:console).
// Plain JavaScript: it runs from npm hooks like scripts/ensure-deps.mjs.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "console", "dist", "index.html");

/** The newest modification time under a path (files only). */
function newest(path) {
  let s;
  try {
    s = statSync(path);
  } catch {
    return 0;
  }
  if (!s.isDirectory()) return s.mtimeMs;
  let max = 0;
  for (const name of readdirSync(path)) max = Math.max(max, newest(join(path, name)));
  return max;
}

// The console's sources, the contracts' generated code it imports, and the lock file (its toolchain).
const sources = [
  join(root, "console", "src"),
  join(root, "console", "index.html"),
  join(root, "console", "vite.config.ts"),
  join(root, "gen"),
  join(root, "package-lock.json"),
];
const built = newest(dist);
const force = process.argv.includes("--force");
const stale = force || built === 0 || sources.some((s) => newest(s) > built);

if (stale) {
  process.stderr.write(`build-console: ${built === 0 ? "no build yet" : force ? "forced" : "sources changed"}: building console/dist\n`);
  const vite = join(root, "node_modules", "vite", "bin", "vite.js");
  const r = spawnSync(process.execPath, [vite, "build", "--config", join(root, "console", "vite.config.ts"), "--logLevel", "warn"], {
    cwd: root,
    stdio: "inherit",
  });
  if (r.error || r.status !== 0) {
    process.stderr.write(`build-console: the build failed (${r.error?.message ?? r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
}
