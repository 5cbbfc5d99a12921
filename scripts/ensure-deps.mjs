// prestart/pretest hook: make node_modules match package-lock.json.
// Runs `npm ci` when node_modules is missing or package-lock.json is newer than
// npm's record of the last install (node_modules/.package-lock.json); otherwise
// it only stats two files. Plain JavaScript for any Node >= 18: the hook runs
// before node_modules (and with it the project's Node 24) exists.
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

const lock = mtime(join(root, "package-lock.json"));
const installed = mtime(join(root, "node_modules", ".package-lock.json"));
const reason =
  installed === undefined
    ? "node_modules is missing or was not installed by npm"
    : lock !== undefined && lock > installed
      ? "package-lock.json is newer than node_modules"
      : undefined;

if (reason !== undefined) {
  process.stderr.write(`ensure-deps: ${reason}: running npm ci\n`);
  // Under `npm run`, npm_execpath is the npm that runs us: use the same one.
  const npmCli = process.env.npm_execpath;
  const r =
    npmCli && /\.[cm]?js$/.test(npmCli)
      ? spawnSync(process.execPath, [npmCli, "ci"], { cwd: root, stdio: "inherit" })
      : spawnSync(process.platform === "win32" ? "npm.cmd" : "npm", ["ci"], {
          cwd: root,
          stdio: "inherit",
          shell: process.platform === "win32",
        });
  if (r.error) {
    process.stderr.write(`ensure-deps: could not run npm ci: ${r.error.message}\n`);
    process.exit(1);
  }
  if (r.status !== 0) {
    process.stderr.write(`ensure-deps: npm ci failed (${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
}
