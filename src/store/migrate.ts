// Versioned migrations, applied at start. Each file runs once, in name
// order, inside one transaction with its bookkeeping row; an advisory lock
// keeps concurrently starting replicas from applying the same file twice.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Pool, PoolClient } from "pg";
import { withConnection } from "./transaction.ts";

const MIGRATIONS_DIR = join(import.meta.dirname, "migrations");
const LOCK_KEY = 7_428_113_001; // arbitrary, fixed: "auditlog migrations"

export function migrate(pool: Pool): Promise<string[]> {
  return withConnection(pool, (client) => migrateOn(client));
}

async function migrateOn(client: PoolClient): Promise<string[]> {
  const applied: string[] = [];
  try {
    await client.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ version: string }>("SELECT version FROM schema_migrations")).rows.map((r) => r.version));
    const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith(".sql")).sort();
    for (const file of files) {
      if (done.has(file)) continue;
      const sql = await readFile(join(MIGRATIONS_DIR, file), "utf8");
      await client.query("BEGIN");
      try {
        await client.query(sql);
        await client.query("INSERT INTO schema_migrations (version) VALUES ($1)", [file]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK");
        throw new Error(`migration ${file} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(file);
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]);
  }
  return applied;
}
