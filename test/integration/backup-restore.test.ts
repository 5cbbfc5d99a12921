// Backup and restore (docs/OPERATIONS.md, "Backup and restore"): pg_dump -Fc
// of a running service's database, pg_restore into a fresh database on the
// same server, npm run reindex into a fresh index prefix, and a service on
// the restored database answers as the original did: VerifyChain passes with
// the same head, checkpoints are the same, searches give the same ids in the
// same order and the same totals.
//
// pg_dump cannot dump a server of a newer major version: the test uses the
// machine's pg_dump/pg_restore and needs them to be at least the server's
// version. Without them (e.g. the embedded PostgreSQL 18 of a machine with
// PostgreSQL 15 clients) it is skipped with the reason, except in CI (CI=true),
// where it fails.
import { execFile, execFileSync } from "node:child_process";
import { randomBytes, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { type App, startApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { indexNames } from "../../src/search/elasticsearch/index-names.ts";
import { createLogger } from "../../src/platform/log.ts";
import { freshDatabase } from "../support/db.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, type TenantKeys } from "../support/service.ts";

const EVENTS = 300;
const ROOT = join(import.meta.dirname, "../..");
const inCi = process.env.CI === "true";

function major(text: string): number {
  return Number(/(\d+)(?:\.\d+)?/.exec(text)?.[1] ?? 0);
}

/** Why the machine's pg_dump/pg_restore cannot back up the test server (null: they can). */
async function clientProblem(databaseUrl: string): Promise<string | null> {
  let dumpVersion: string;
  try {
    dumpVersion = execFileSync("pg_dump", ["--version"], { encoding: "utf8" });
    execFileSync("pg_restore", ["--version"], { encoding: "utf8" });
  } catch {
    return "pg_dump or pg_restore is not on PATH (install the PostgreSQL client, e.g. postgresql-client-15)";
  }
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  const server = (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  await c.end();
  if (major(dumpVersion) < major(server))
    return `pg_dump ${major(dumpVersion)} cannot dump PostgreSQL ${major(server)} (set DATABASE_URL to a server of the clients' version)`;
  return null;
}

const problem = await clientProblem(inject("databaseUrl"));
if (problem && !inCi) process.stderr.write(`backup-restore.test.ts skipped: ${problem}\n`);

const QUERIES: Record<string, unknown>[] = [
  {},
  { filter: { actions: ["invoice.billed"] } },
  { filter: { query: "severity>=WARNING actor.id:user-3 actor.id:user-4" }, order: "SORT_ORDER_ASCENDING" },
  { filter: { text: "user 5" } },
];

describe.skipIf(problem !== null && !inCi)("backup with pg_dump, restore into a fresh database, reindex", () => {
  const dir = mkdtempSync(join(tmpdir(), "auditlog-backup-"));
  const keyFile = join(dir, "checkpoint-key.pem");
  const es = new Client({ node: inject("elasticsearchUrl") });
  const prefixes = [`bkp-a-${randomBytes(4).toString("hex")}`, `bkp-b-${randomBytes(4).toString("hex")}`];
  const drops: (() => Promise<void>)[] = [];
  let original: App;
  let restored: App | null = null;
  let restoredUrl: string;
  let keys: TenantKeys;

  const start = async (databaseUrl: string, prefix: string) =>
    startApp(
      {
        ...loadConfig({
          PORT: "0",
          AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY,
          LOG_LEVEL: "warn",
          ELASTICSEARCH_URL: inject("elasticsearchUrl"),
          AUDITLOG_ES_INDEX_PREFIX: prefix,
          AUDITLOG_CHECKPOINT_KEY_FILE: keyFile,
          AUDITLOG_CHECKPOINT_INTERVAL_MS: "0",
          // Reads would otherwise add access records to the log between the two observations.
          AUDITLOG_ACCESS_AUDIT: "off",
        }),
        databaseUrl,
      },
      createLogger({ level: "warn" }),
    );

  /** What a reader sees: the chain verdict, the checkpoints and a few searches (ids in order, totals). */
  async function observe(url: string) {
    const call = async (method: string, body: unknown) => {
      const r = await connectCall<Record<string, unknown>>(url, `auditlog.v1.QueryService/${method}`, body, keys.query);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body;
    };
    const searches = [];
    for (const q of QUERIES) {
      const page = (await call("SearchEvents", { ...q, pageSize: 50, includeTotal: true, minPosition: String(EVENTS) })) as {
        events?: { event: { id: string } }[];
        total?: string;
      };
      searches.push({ ids: (page.events ?? []).map((e) => e.event.id), total: page.total });
    }
    return {
      chain: await call("VerifyChain", {}),
      checkpoints: await call("ListCheckpoints", {}),
      searches,
    };
  }

  beforeAll(async () => {
    if (problem) throw new Error(`CI must be able to run pg_dump/pg_restore against its PostgreSQL: ${problem}`);
    writeFileSync(keyFile, generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }));
    const db = await freshDatabase();
    drops.push(db.drop);
    original = await start(db.url, prefixes[0]!);
    keys = await createTenantWithKeys(original.url, "backup-t");
    const events = Array.from({ length: EVENTS }, (_, i) => toConnectJson(makeEvent(i, "bk")));
    const r = await connectCall(original.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);
    expect(r.status).toBe(200);
    const cp = await connectCall(original.url, "auditlog.v1.QueryService/CreateCheckpoint", {}, keys.query);
    expect(cp.status).toBe(200);

    execFileSync("pg_dump", ["-Fc", "-f", join(dir, "auditlog.dump"), db.url]);
    const target = await freshDatabase();
    drops.push(target.drop);
    restoredUrl = target.url;
    execFileSync("pg_restore", ["--exit-on-error", "-d", restoredUrl, join(dir, "auditlog.dump")]);
    await promisify(execFile)(process.execPath, ["scripts/reindex.ts", "--prefix", prefixes[1]!, "--yes"], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: restoredUrl, ELASTICSEARCH_URL: inject("elasticsearchUrl") },
    });
  }, 180_000);

  afterAll(async () => {
    await restored?.close();
    await original?.close();
    for (const prefix of prefixes) {
      const names = indexNames(prefix);
      const found = await es.indices.get({ index: names.pattern, ignore_unavailable: true, allow_no_indices: true }).catch(() => ({}));
      const list = Object.keys(found);
      if (list.length) await es.indices.delete({ index: list.join(",") }).catch(() => {});
      await es.indices.deleteIndexTemplate({ name: names.templateName }).catch(() => {});
    }
    await es.close();
    for (const drop of drops) await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives a passing VerifyChain, the same checkpoints and identical search results", async () => {
    const before = await observe(original.url);
    expect(before.chain).toMatchObject({ ok: true, checked: String(EVENTS) });
    expect(before.searches.every((s) => s.ids.length > 0)).toBe(true);
    restored = await start(restoredUrl, prefixes[1]!);
    const after = await observe(restored.url);
    expect(after).toEqual(before);
  });
});
