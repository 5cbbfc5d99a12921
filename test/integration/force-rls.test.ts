// Forced row-level security (migrations/0004_force_rls.sql) with the service
// running as an ordinary role that owns its tables, as a production
// deployment should (a superuser skips row-level security altogether, which
// is why the other tests, running as postgres, cannot see any of this):
// the tenant policy holds for the reading role and for the owner alike, the
// owner sees every tenant only in an explicit system scope and nothing at
// all when it set neither, and the cross-tenant work (writer, tenant
// creation, index status) still works.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { EventRecord } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { readIndexStatus } from "../../src/search/elasticsearch/index-status.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { migrate } from "../../src/store/migrate.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { systemQuery } from "../../src/store/system-scope.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { inTransaction } from "../../src/store/transaction.ts";
import { tenantReadQueries, withTenantRead } from "../../src/store/tenant-scope.ts";
import { freshDatabase } from "../support/db.ts";

const TABLES = ["events", "event_ids", "chain_heads"] as const;

function record(i: number): EventRecord {
  return {
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
}

const item = (tenantId: string, i: number): WriteItem => {
  const r = record(i);
  return { tenantId, record: r, ...sealContent(r) };
};

describe("forced row-level security with a non-superuser owner", () => {
  const role = `auditlog_owner_${randomBytes(4).toString("hex")}`;
  let admin: pg.Client;
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;

  const distinct = async (c: pg.PoolClient | pg.Pool, table: string) =>
    (await c.query<{ tenant_id: string }>(`SELECT DISTINCT tenant_id FROM ${table} ORDER BY 1`)).rows.map((r) => r.tenant_id);

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
    const tenants = new TenantStore(pool);
    await tenants.create("t-a", "A");
    await tenants.create("t-b", "B");
    const results = await writeBatch(pool, [item("t-a", 1), item("t-b", 1), item("t-a", 2), item("t-b", 2), item("t-b", 3)]);
    expect(results.map((r) => r.status)).toEqual(["accepted", "accepted", "accepted", "accepted", "accepted"]);
  });

  afterAll(async () => {
    await pool?.end();
    await db?.drop();
    await admin?.query(`DROP ROLE IF EXISTS ${role}`);
    await admin?.end();
  });

  it("the owner really is an ordinary role owning the tables, and the tables force row-level security", async () => {
    const { rows } = await admin.query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", [role]);
    expect(rows[0]).toEqual({ rolsuper: false, rolbypassrls: false });
    const t = await pool.query<{ relname: string; owner: string; relforcerowsecurity: boolean }>(
      `SELECT relname, pg_get_userbyid(relowner) AS owner, relforcerowsecurity FROM pg_class WHERE relname = ANY($1) ORDER BY relname`,
      [TABLES],
    );
    expect(t.rows).toEqual([...TABLES].sort().map((relname) => ({ relname, owner: role, relforcerowsecurity: true })));
  });

  it("the reading role with one tenant set sees only that tenant, without any tenant condition", async () => {
    for (const table of TABLES) {
      expect(await withTenantRead(pool, "t-a", (c) => distinct(c, table)), table).toEqual(["t-a"]);
    }
    expect(await withTenantRead(pool, "t-b", (c) => c.query("SELECT count(*)::int AS n FROM events"))).toMatchObject({ rows: [{ n: 3 }] });
  });

  it("the owner with one tenant set sees only that tenant too", async () => {
    for (const table of TABLES) {
      const seen = await inTransaction(pool, "BEGIN READ ONLY", async (c) => {
        await c.query("SELECT set_config('auditlog.tenant_id', 't-a', true)");
        return distinct(c, table);
      });
      expect(seen, table).toEqual(["t-a"]);
    }
  });

  it("the read's settings are literals: a tenant id with quotes and backslashes is one tenant, not SQL", async () => {
    const id = "t-a', true), set_config('auditlog.scope', 'system\\";
    for (const table of TABLES) expect(await withTenantRead(pool, id, (c) => distinct(c, table)), table).toEqual([]);
    const settings = await withTenantRead(pool, id, (c) =>
      c.query(
        "SELECT current_setting('auditlog.tenant_id') AS tenant, current_setting('auditlog.scope', true) AS scope, current_user AS who",
      ),
    );
    expect(settings.rows).toEqual([{ tenant: id, scope: "", who: "auditlog_reader" }]);
  });

  it("a transaction whose setup fails after BEGIN is rolled back, and its connection is clean for the next user", async () => {
    const one = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      await expect(inTransaction(one, "BEGIN READ ONLY; SELECT 1 / 0", async () => "never")).rejects.toThrow(/division by zero/);
      // The same (only) connection: outside any transaction, so not "current transaction is aborted".
      expect((await one.query("SELECT now() = statement_timestamp() AS fresh")).rows).toEqual([{ fresh: true }]);
    } finally {
      await one.end();
    }
  });

  it("tenantReadQueries: several statements in one round trip, each one's result, under the same row-level security", async () => {
    const [events, ids, who] = await tenantReadQueries(pool, "t-b", [
      { text: "SELECT DISTINCT tenant_id FROM events WHERE tenant_id <> $1", values: ["nobody"] },
      { text: "SELECT count(*)::int AS n FROM event_ids WHERE event_id = ANY($1)", values: [["ev-1", "ev-2", "it's"]] },
      { text: "SELECT current_user AS who, current_setting('transaction_read_only') AS ro", values: [] },
    ]);
    expect(events!.rows).toEqual([{ tenant_id: "t-b" }]);
    expect(ids!.rows).toEqual([{ n: 2 }]);
    expect(who!.rows).toEqual([{ who: "auditlog_reader", ro: "on" }]);
    const hostile = await tenantReadQueries(pool, "t-a", [
      { text: "SELECT count(*)::int AS n FROM events WHERE id = $1", values: ["x' OR 't'='t"] },
    ]);
    expect(hostile[0]!.rows).toEqual([{ n: 0 }]);
  });

  it("tenantReadQueries: a failing statement rolls the read back and leaves its connection clean", async () => {
    const one = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      await expect(
        tenantReadQueries(one, "t-a", [
          { text: "SELECT 1 AS one", values: [] },
          { text: "SELECT 1 / $1::int", values: [0] },
        ]),
      ).rejects.toThrow(/division by zero/);
      expect((await one.query("SELECT now() = statement_timestamp() AS fresh, current_user = 'auditlog_reader' AS reader")).rows).toEqual([
        { fresh: true, reader: false },
      ]);
    } finally {
      await one.end();
    }
  });

  it("the owner sees nothing when it set neither a tenant nor system scope", async () => {
    for (const table of TABLES) expect(await distinct(pool, table), table).toEqual([]);
  });

  it("system scope is the owner's only, explicit, and never widens a tenant", async () => {
    for (const table of TABLES) expect(await distinct(await systemQuery(pool, "SELECT 1").then(() => pool), table)).toEqual([]);
    for (const table of TABLES) {
      expect(
        (await systemQuery(pool, `SELECT DISTINCT tenant_id FROM ${table} ORDER BY 1`)).rows.map((r) => r.tenant_id),
        table,
      ).toEqual(["t-a", "t-b"]);
    }
    const scoped = (setup: string) =>
      inTransaction(pool, "BEGIN READ ONLY", async (c) => {
        await c.query(setup);
        return distinct(c, "events");
      });
    expect(await scoped("SELECT set_config('auditlog.scope', 'system', true), set_config('auditlog.tenant_id', 't-b', true)")).toEqual([
      "t-b",
    ]);
    expect(await scoped("SET LOCAL ROLE auditlog_reader; SELECT set_config('auditlog.scope', 'system', true)")).toEqual([]);
  });

  it("the owner cannot write a row outside system scope", async () => {
    await expect(
      inTransaction(pool, "BEGIN", async (c) => {
        await c.query("SELECT set_config('auditlog.tenant_id', 't-a', true)");
        await c.query("UPDATE chain_heads SET sequence = sequence WHERE tenant_id = 't-b'");
        return c.query("INSERT INTO event_ids VALUES ('t-b', 'x', 'h', 99, now())");
      }),
    ).rejects.toThrow(/row-level security/);
  });

  it("the writer still detects duplicates and conflicts across tenants, and index status reads the heads", async () => {
    const dup = item("t-a", 1);
    const conflict = { ...item("t-b", 2), digest: "other" };
    const results = await writeBatch(pool, [dup, conflict, item("t-a", 3)]);
    expect(results).toEqual([
      { status: "duplicate", sequence: 1n },
      { status: "conflict", sequence: 2n },
      { status: "accepted", sequence: 3n },
    ]);
    expect((await readIndexStatus(pool, "t-b")).committedPosition).toBe(3n);
  });
});
