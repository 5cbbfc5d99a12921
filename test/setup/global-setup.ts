// vitest globalSetup: one PostgreSQL database and one Elasticsearch per test run.
//
// PostgreSQL: with DATABASE_URL set, that server is used; otherwise an
// embedded PostgreSQL 18 is started from .cache/test-postgres/slot-<n> (kept
// between runs, fsync off, on a free port; concurrent runs take different
// slots, each a cluster of its own). Either way this run gets its own database
// auditlog_test_<runid>, dropped at teardown together with every database
// that test/support/db.ts freshDatabase() made for the run.
//
// Elasticsearch: with ELASTICSEARCH_URL set, that node is used; otherwise one
// is started with src/devservers/elasticsearch.ts (about 10-20 s on 2 cores; C1-only
// JIT for a faster start) and stopped at teardown.
//
// Tests read the endpoints with inject("databaseUrl"), inject("adminDatabaseUrl")
// and inject("elasticsearchUrl").
import { randomBytes } from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startElasticsearch } from "../../src/devservers/elasticsearch.ts";
import { startEmbeddedPostgres } from "../../src/devservers/embedded-postgres.ts";
import { startS3Proxy } from "../../src/devservers/s3proxy.ts";
import { freePort, pidAlive } from "../../src/devservers/processes.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** This run's own database (auditlog_test_<runid>), empty: tests run their migrations. */
    databaseUrl: string;
    /** The same server's maintenance database, for CREATE/DROP DATABASE (see test/support/db.ts). */
    adminDatabaseUrl: string;
    /** http://host:port of an Elasticsearch 8.19 node with security off. */
    elasticsearchUrl: string;
    /**
     * http://host:port of an S3-compatible server (s3proxy, filesystem
     * backend, identity/credential of src/devservers/s3proxy.ts), or S3_URL.
     */
    s3Url: string;
  }
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const log = (msg: string) => process.stderr.write(`[global-setup] ${msg}\n`);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cleanups: (() => Promise<void>)[] = [];
  const teardown = async () => {
    for (const fn of cleanups.reverse()) {
      await fn().catch((err: unknown) => log(`teardown step failed: ${String(err)}`));
    }
  };
  // Start both at once: Elasticsearch takes 10-20 s on 2 idle cores (40+ s
  // when the machine is busy), PostgreSQL 0.5-2 s (more for a first initdb).
  // allSettled, so that when one fails the other is up (and torn down) first.
  const [db, es, s3] = await Promise.allSettled([setUpPostgres(cleanups), setUpElasticsearch(cleanups), setUpS3(cleanups)]);
  if (db.status === "rejected" || es.status === "rejected" || s3.status === "rejected") {
    await teardown();
    throw db.status === "rejected" ? db.reason : es.status === "rejected" ? es.reason : (s3 as PromiseRejectedResult).reason;
  }
  project.provide("s3Url", s3.value);
  project.provide("databaseUrl", db.value.databaseUrl);
  project.provide("adminDatabaseUrl", db.value.adminDatabaseUrl);
  project.provide("elasticsearchUrl", es.value);
  return teardown;
}

async function setUpPostgres(cleanups: (() => Promise<void>)[]): Promise<{ databaseUrl: string; adminDatabaseUrl: string }> {
  let adminDatabaseUrl = process.env.DATABASE_URL;
  if (!adminDatabaseUrl) {
    const t0 = performance.now();
    const slot = await acquireSlot(path.join(repoRoot, ".cache", "test-postgres"));
    cleanups.push(slot.release);
    const pgEmbedded = await startEmbeddedPostgres({
      dataDir: slot.dir,
      port: await freePort(),
      // Safe against process crashes (kill -9 of postgres or of a test), not against a machine crash.
      settings: { fsync: "off" },
    });
    cleanups.push(() => pgEmbedded.stop());
    adminDatabaseUrl = pgEmbedded.adminUrl;
    log(`embedded PostgreSQL on 127.0.0.1:${pgEmbedded.port} ready in ${Math.round(performance.now() - t0)} ms`);
    // The embedded cluster is ours alone (startEmbeddedPostgres refuses a data
    // directory that a live process owns), so databases left by killed runs can go.
    await dropDatabases(adminDatabaseUrl, "auditlog_test_");
  }
  const runDb = `auditlog_test_${randomBytes(4).toString("hex")}`;
  await createDatabase(adminDatabaseUrl, runDb);
  const admin = adminDatabaseUrl;
  cleanups.push(() => dropDatabases(admin, runDb)); // also catches freshDatabase() leftovers: they share the prefix
  return { databaseUrl: withDatabase(adminDatabaseUrl, runDb), adminDatabaseUrl };
}

async function setUpElasticsearch(cleanups: (() => Promise<void>)[]): Promise<string> {
  if (process.env.ELASTICSEARCH_URL) return process.env.ELASTICSEARCH_URL.replace(/\/+$/, "");
  const es = await startElasticsearch({ log, fastStartup: true });
  cleanups.push(() => es.stop());
  return es.url;
}

// s3proxy on Java 17 starts in about 5 s; S3_URL names one already running.
async function setUpS3(cleanups: (() => Promise<void>)[]): Promise<string> {
  if (process.env.S3_URL) return process.env.S3_URL.replace(/\/+$/, "");
  const s3 = await startS3Proxy({ log });
  cleanups.push(() => s3.stop());
  return s3.url;
}

/** The URL with its database (path) replaced. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

export async function createDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(`create database ${client.escapeIdentifier(name)}`);
        return;
      } catch (err) {
        // 55006: "source database template1 is being accessed by other users" (a concurrent CREATE DATABASE)
        if ((err as { code?: string }).code !== "55006" || attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  } finally {
    await client.end();
  }
}

/** Drops every database whose name starts with `prefix`, disconnecting its sessions. */
export async function dropDatabases(adminUrl: string, prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(
      "select datname from pg_database where left(datname, length($1)) = $1 and datname <> current_database()",
      [prefix],
    );
    for (const { datname } of rows) {
      await client.query(`drop database if exists ${client.escapeIdentifier(datname)} with (force)`);
    }
  } finally {
    await client.end();
  }
}

/**
 * A data directory no other live test run is using: slot-<n> under `base`,
 * held by an O_EXCL lock file with our PID (a lock whose PID is dead is taken
 * over). Each slot is a persistent cluster, so concurrent runs (two developers
 * or a developer and an agent on one machine) do not fight over one.
 */
async function acquireSlot(base: string): Promise<{ dir: string; release: () => Promise<void> }> {
  await fsp.mkdir(base, { recursive: true });
  for (let n = 0; n < 32; n++) {
    const lock = path.join(base, `slot-${n}.lock`);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await fsp.writeFile(lock, `${process.pid}\n`, { flag: "wx" });
        return { dir: path.join(base, `slot-${n}`), release: () => fsp.rm(lock, { force: true }) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const owner = Number((await fsp.readFile(lock, "utf8").catch(() => "")).trim());
      if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) break; // in use: next slot
      await fsp.rm(lock, { force: true }); // stale (its run was killed): take it over
    }
  }
  throw new Error(`no free embedded PostgreSQL slot under ${base} (32 test runs at once?)`);
}
