// A database of its own for a test file that must not see other files' rows.
//
//   const db = await freshDatabase();   // { url, drop }
//   ...
//   await db.drop();
//
// It is created on the run's PostgreSQL server (inject("adminDatabaseUrl")),
// named after the run's database plus a random suffix, and empty: run the
// migrations you need. Databases a test forgets to drop are dropped at the end
// of the run by the global setup, which drops everything with the run's prefix.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { migrate } from "../../src/store/migrate.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { createDatabase, dropDatabases, withDatabase } from "../setup/global-setup.ts";

export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const adminUrl = inject("adminDatabaseUrl");
  const runDb = decodeURIComponent(new URL(inject("databaseUrl")).pathname.slice(1));
  const name = `${runDb}_${randomBytes(4).toString("hex")}`;
  await createDatabase(adminUrl, name);
  let dropped: Promise<void> | undefined;
  return {
    url: withDatabase(adminUrl, name),
    drop: () => (dropped ??= dropDatabases(adminUrl, name)),
  };
}

/** freshDatabase with the migrations run, the partitions made and these tenants created; `pool` is the caller's to end. */
export async function migratedDatabase(
  tenants: readonly (readonly [id: string, name: string])[],
): Promise<{ db: { url: string; drop: () => Promise<void> }; pool: pg.Pool }> {
  const db = await freshDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  await migrate(pool);
  await ensurePartitions(pool);
  const store = new TenantStore(pool);
  for (const [id, name] of tenants) await store.create(id, name);
  return { db, pool };
}
