// Row-level security on every table that holds a tenant's rows
// (migrations/0007_tenant_rls_lifecycle.sql), with the service running as an
// ordinary role that owns its tables (see force-rls.test.ts for why): every
// such table forces a tenant policy and the owner's system scope; keys and
// tenant state are found for authentication only through the functions made
// for it; and deleting a tenant leaves none of its rows anywhere.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { EventRecord } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { hashSecret } from "../../src/domain/api-key-secret.ts";
import { ApiKeyStore } from "../../src/store/api-key-store.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { advanceProgress, recordRefusals } from "../../src/store/index-progress.ts";
import { migrate } from "../../src/store/migrate.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { systemQuery, withSystemScope } from "../../src/store/system-scope.ts";
import { TenantLifecycleError, TenantStore, tenantTables } from "../../src/store/tenant-store.ts";
import { inTransaction } from "../../src/store/transaction.ts";
import { withTenantRead } from "../../src/store/tenant-scope.ts";
import { freshDatabase } from "../support/db.ts";
import { CheckpointStore } from "../../src/store/checkpoint-store.ts";
import { headSigner } from "../../src/services/checkpoints.ts";
import { signingKeyFromPem } from "../../src/domain/signing.ts";

/** The tables beforeAll fills for both tenants. */
const SEEDED = [
  "api_keys",
  "chain_heads",
  "checkpoints",
  "event_ids",
  "events",
  "index_failures",
  "index_progress",
  "reconcile_reports",
  "tenants",
];

function item(tenantId: string, i: number): WriteItem {
  const record = {
    id: `ev-${i}`,
    occurredAt: BigInt(Date.UTC(2026, 0, 1) + i * 1000) * 1000n,
    action: "customer.created",
    actor: { id: "u", type: "USER", name: "", ip: "", userAgent: "", sessionId: "" },
    target: null,
    outcome: "SUCCESS",
    severity: "INFO",
    context: { requestId: "", traceId: "", source: "", location: "" },
    changes: null,
    metadata: { i },
    message: `event ${i}`,
  } as EventRecord;
  return { tenantId, record, ...sealContent(record) };
}

describe("row-level security on every tenant table, with a non-superuser owner", () => {
  const role = `auditlog_owner_${randomBytes(4).toString("hex")}`;
  let admin: pg.Client;
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  let tenants: TenantStore;
  let keys: ApiKeyStore;
  let tables: string[];

  const distinct = async (c: pg.PoolClient | pg.Pool, table: string) => {
    const column = table === "tenants" ? "id" : "tenant_id";
    return (await c.query<{ t: string }>(`SELECT DISTINCT ${column} AS t FROM ${table} ORDER BY 1`)).rows.map((r) => r.t);
  };

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: inject("adminDatabaseUrl") });
    await admin.connect();
    db = await freshDatabase();
    const dbName = decodeURIComponent(new URL(db.url).pathname.slice(1));
    await admin.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOBYPASSRLS`);
    await admin.query(
      `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auditlog_reader') THEN CREATE ROLE auditlog_reader NOLOGIN; END IF; END $$`,
    );
    await admin.query(`GRANT auditlog_reader TO ${role}`);
    await admin.query(`ALTER DATABASE "${dbName}" OWNER TO ${role}`);
    const url = new URL(db.url);
    url.username = role;
    url.password = "";
    pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
    await migrate(pool);
    await ensurePartitions(pool);
    tenants = new TenantStore(pool);
    keys = new ApiKeyStore(pool);
    for (const t of ["t-a", "t-b"]) {
      await tenants.create(t, t.toUpperCase());
      await keys.create({ id: `key-${t}`, tenantId: t, name: "", scopes: ["query"], secretHash: hashSecret(`s-${t}`), expiresAt: null });
    }
    await writeBatch(pool, [item("t-a", 1), item("t-b", 1), item("t-a", 2), item("t-b", 2)]);
    for (const t of ["t-a", "t-b"]) {
      expect(await advanceProgress(pool, t, 0n, 1n, [{ sequence: 2n, eventId: "ev-2", reason: "test" }])).toBe(true);
      await systemQuery(
        pool,
        "INSERT INTO reconcile_reports (tenant_id, windows_checked, windows_with_gaps, events_repaired, documents_removed) VALUES ($1, 1, 0, 0, 0)",
        [t],
      );
      // Through the store, as the service writes them (system scope, as this non-superuser owner).
      const signing = signingKeyFromPem(generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString());
      expect(await new CheckpointStore(pool).checkpointHead(t, signing.keyId, headSigner(signing))).toMatchObject({
        tenantId: t,
        sequence: 2n,
      });
    }
    tables = [...(await tenantTables(pool)), "tenants"].sort();
  });

  afterAll(async () => {
    await pool?.end();
    await db?.drop();
    await admin?.query(`DROP ROLE IF EXISTS ${role}`);
    await admin?.end();
  });

  it("every table with a tenant_id (and tenants) forces row-level security with a tenant policy and the owner's system scope", async () => {
    expect(tables).toEqual(
      expect.arrayContaining([
        "api_keys",
        "chain_heads",
        "event_ids",
        "events",
        "index_failures",
        "index_progress",
        "reconcile_reports",
        "tenants",
      ]),
    );
    for (const table of tables) {
      const c = await pool.query<{ relrowsecurity: boolean; relforcerowsecurity: boolean; owner: string }>(
        "SELECT relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = $1",
        [table],
      );
      expect(c.rows[0], table).toEqual({ relrowsecurity: true, relforcerowsecurity: true, owner: role });
      const p = await pool.query<{ policyname: string }>("SELECT policyname FROM pg_policies WHERE tablename = $1", [table]);
      expect(
        p.rows.map((r) => r.policyname),
        table,
      ).toEqual(expect.arrayContaining(["tenant_isolation", "system_scope"]));
    }
  });

  it("the owner sees nothing without a scope, one tenant with a tenant set, all in system scope", async () => {
    for (const table of tables) {
      expect(await distinct(pool, table), table).toEqual([]);
      const seen = await inTransaction(pool, "BEGIN READ ONLY", async (c) => {
        await c.query("SELECT set_config('auditlog.tenant_id', 't-a', true)");
        return distinct(c, table);
      });
      const all = await withSystemScope(pool, (c) => distinct(c, table));
      // Tables this test did not fill (added by later features) may be empty; the ones it filled hold both tenants.
      if (SEEDED.includes(table)) expect(all, table).toEqual(["t-a", "t-b"]);
      expect(seen, table).toEqual(all.filter((t) => t === "t-a"));
    }
    expect(await withTenantRead(pool, "t-b", (c) => distinct(c, "index_failures"))).toEqual(["t-b"]);
  });

  it("authentication finds any tenant's key and tenant state through its functions, which leave no scope behind", async () => {
    expect((await keys.get("key-t-b"))?.tenant_id).toBe("t-b");
    expect(await keys.get("nope")).toBeNull();
    expect(await tenants.suspendedAt("t-a")).toBeNull();
    expect(await tenants.suspendedAt("t-zz")).toBeUndefined();
    const after = await inTransaction(pool, "BEGIN", async (c) => {
      await c.query("SELECT * FROM auditlog_key_for_authentication('key-t-a')");
      return (await c.query<{ s: string | null }>("SELECT current_setting('auditlog.scope', true) AS s")).rows[0]!.s;
    });
    expect(after ?? "").toBe("");
    // The lookup scope reads; it never writes.
    await expect(
      inTransaction(pool, "BEGIN", async (c) => {
        await c.query("SELECT set_config('auditlog.scope', 'auth_lookup', true)");
        return c.query("UPDATE api_keys SET name = 'x' RETURNING id");
      }),
    ).resolves.toMatchObject({ rowCount: 0 });
    // Only the owner may call the functions.
    const grants = await pool.query<{ ok: boolean }>(
      "SELECT has_function_privilege('auditlog_reader', 'auditlog_key_for_authentication(text)', 'EXECUTE') AS ok",
    );
    expect(grants.rows[0]!.ok).toBe(false);
  });

  it("a tenant is deleted only suspended and with its confirmation, then none of its rows remain", async () => {
    const token = hashSecret("confirm");
    await expect(tenants.requestDeletion("t-a", token, new Date(Date.now() + 60_000))).rejects.toBeInstanceOf(TenantLifecycleError);
    await tenants.setSuspended("t-a", true);
    await expect(tenants.delete("t-a", token)).rejects.toThrow(/no pending deletion/);
    await tenants.requestDeletion("t-a", token, new Date(Date.now() + 60_000));
    await expect(tenants.delete("t-a", hashSecret("guess"))).rejects.toThrow(/not the pending confirmation/);
    await expect(tenants.delete("t-a", token, new Date(Date.now() + 120_000))).rejects.toThrow(/expired/);
    const deleted = await tenants.delete("t-a", token);
    expect(deleted).toMatchObject({ events: 2, event_ids: 2, chain_heads: 1, api_keys: 1, index_progress: 1, index_failures: 1 });
    for (const table of tables) {
      const left = await withSystemScope(pool, (c) => distinct(c, table));
      expect(left, table).toEqual(SEEDED.includes(table) ? ["t-b"] : []);
    }
    expect(await tenants.exists("t-a")).toBe(false);
    await recordRefusals(pool, "t-b", []);
  });
});
