// Deleting a tenant deletes its archive objects and manifests in the bucket
// (a real S3-compatible server, s3proxy), once the confirmation is accepted
// and before its rows; the deletion is recorded in the operator's log; a
// deletion cut halfway is finished by calling it again; it waits for a
// retention round (the lifecycle lock); other tenants' objects stay and
// still verify.
import { Writable } from "node:stream";
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService, DeleteTenantRequestSchema } from "../../gen/auditlog/v1/admin_pb.js";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import type { ArchiveStore } from "../../src/archive/object-store.ts";
import { principalKey } from "../../src/auth/principal.ts";
import { S3PROXY_CREDENTIAL, S3PROXY_IDENTITY } from "../../src/devservers/s3proxy.ts";
import { LIFECYCLE_LOCK_KEY, withLifecycleLock } from "../../src/lifecycle/lifecycle-lock.ts";
import { RetentionJob } from "../../src/lifecycle/retention-job.ts";
import { TenantArchive } from "../../src/lifecycle/tenant-archive.ts";
import { createLogger } from "../../src/platform/log.ts";
import { tenantLifecycle } from "../../src/services/tenant-lifecycle.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { RetentionStore } from "../../src/store/retention-store.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { archiveStoreForTests, DAY, writeEvents } from "../support/lifecycle.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const prefix = `test-tenant-deletion-${randomBytes(3).toString("hex")}`;
const TENANTS = ["arc-gone", "arc-api", "arc-kept"] as const;
let svc: TestService;
let archive: ArchiveStore;
const keys = new Map<string, TenantKeys>();
const savedEnv = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
const call = (proc: string, body: unknown, key = BOOTSTRAP_KEY) => connectCall<any>(svc.url, proc, body, key);
const objectsOf = (tenantId: string) => archive.list(`${prefix}/${tenantId}/`);

/** Suspends the tenant and asks for its deletion: the confirmation token. */
async function pendingDeletion(tenantId: string): Promise<string> {
  expect((await call("auditlog.v1.AdminService/SuspendTenant", { tenantId })).status).toBe(200);
  const r = await call("auditlog.v1.AdminService/RequestTenantDeletion", { tenantId });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.confirmationToken;
}

/** The tenant-lifecycle handlers over the service's database, with `store` as the bucket and the log lines kept. */
function handlers(store: ArchiveStore) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  const h = tenantLifecycle({
    validator: createValidator(),
    tenants: new TenantStore(svc.pool),
    tenantArchive: new TenantArchive(svc.pool, store),
    log: createLogger({ level: "info", stream }),
  });
  const deleteTenant = async (tenantId: string, confirmationToken: string) =>
    h.deleteTenant!(
      create(DeleteTenantRequestSchema, { tenantId, confirmationToken }),
      createHandlerContext({
        service: AdminService,
        method: AdminService.method.deleteTenant,
        protocolName: "connect",
        requestMethod: "POST",
        url: "http://localhost/",
        contextValues: createContextValues().set(principalKey, { kind: "operator" }),
      }),
    );
  return { deleteTenant, lines };
}

beforeAll(async () => {
  // The service takes its S3 credentials from the SDK's chain, as in production.
  if (!process.env.S3_URL) {
    process.env.AWS_ACCESS_KEY_ID = S3PROXY_IDENTITY;
    process.env.AWS_SECRET_ACCESS_KEY = S3PROXY_CREDENTIAL;
  }
  svc = await startTestService({
    AUDITLOG_ARCHIVE_S3_ENDPOINT: inject("s3Url"),
    AUDITLOG_ARCHIVE_S3_BUCKET: "auditlog-test",
    AUDITLOG_ARCHIVE_S3_PREFIX: prefix,
    AUDITLOG_RETENTION_INTERVAL_MS: "0",
  });
  archive = archiveStoreForTests(`${prefix}/`);
  await archive.ensureBucket();
  const old = new Date(Date.now() - 30 * DAY);
  await ensurePartitions(svc.pool, new Date(Date.now() - 31 * DAY), 2);
  const store = new RetentionStore(svc.pool);
  for (const t of TENANTS) {
    keys.set(t, await createTenantWithKeys(svc.url, t));
    // 300 expired events (three windows of 100) and 50 recent ones.
    await writeEvents(svc.pool, t, 0, 300, old, (i) => `user-${i % 7}`);
    await writeEvents(svc.pool, t, 300, 50, new Date(), (i) => `user-${i % 7}`);
    await store.setPolicy(t, { searchableDays: 15, keepDays: 19 });
  }
  const log = createLogger({ level: "warn" });
  const round = await new RetentionJob({ pool: svc.pool, store, archive, search: null, log, batchSize: 100 }).runOnce();
  expect(round).toMatchObject({ archivesWritten: 9, eventsDeleted: 900 });
  for (const t of TENANTS) expect(await objectsOf(t)).toHaveLength(6);
}, 300_000);

afterAll(async () => {
  await svc?.stop();
  archive?.close();
  process.env.AWS_ACCESS_KEY_ID = savedEnv.id;
  process.env.AWS_SECRET_ACCESS_KEY = savedEnv.secret;
  if (savedEnv.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
  if (savedEnv.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
});

describe("deleting a tenant with archives", () => {
  it("DeleteTenant deletes its archive objects and manifests, only its own, and says how many in the operator's log", async () => {
    const token = await pendingDeletion("arc-api");
    // A wrong confirmation deletes nothing, in the bucket either.
    expect((await call("auditlog.v1.AdminService/DeleteTenant", { tenantId: "arc-api", confirmationToken: "del_wrong" })).body.code).toBe(
      "failed_precondition",
    );
    expect(await objectsOf("arc-api")).toHaveLength(6);
    const done = await call("auditlog.v1.AdminService/DeleteTenant", { tenantId: "arc-api", confirmationToken: token });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(Number(done.body.deletedRows.archives)).toBe(3);
    expect(done.body.deletedArchiveObjects).toBe("6");
    expect(await objectsOf("arc-api")).toEqual([]);
    expect(await objectsOf("arc-kept")).toHaveLength(6);
    for (const table of ["events", "archives", "retention_state", "tenants"]) {
      const column = table === "tenants" ? "id" : "tenant_id";
      const left = await svc.pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${column} = 'arc-api'`);
      expect(left.rows[0].n, table).toBe(0);
    }
    // The other tenant's whole chain, archives included, still verifies.
    const kept = await call("auditlog.v1.QueryService/VerifyChain", { includeArchives: true }, keys.get("arc-kept")!.query);
    expect(kept.body, JSON.stringify(kept.body)).toMatchObject({ ok: true, checked: "350", fromSequence: "1" });
  });

  it("a deletion cut halfway leaves the tenant pending; called again, it waits for the lifecycle lock and finishes", async () => {
    const token = await pendingDeletion("arc-gone");
    // The bucket fails after two deletions, as a killed process or a lost connection would.
    let deletions = 0;
    const failing = Object.assign(Object.create(archive) as ArchiveStore, {
      delete: async (key: string) => {
        if (++deletions > 2) throw new Error("connection lost");
        await archive.delete(key);
      },
    });
    const cut = handlers(failing);
    await expect(cut.deleteTenant("arc-gone", token)).rejects.toThrow("connection lost");
    // Nothing of PostgreSQL went: the tenant is there, suspended, its deletion still pending.
    const tenant = await new TenantStore(svc.pool).get("arc-gone");
    expect(tenant).toMatchObject({ id: "arc-gone" });
    expect(tenant!.suspended_at).not.toBeNull();
    expect(tenant!.deletion_expires_at).not.toBeNull();
    const rows = await svc.pool.query("SELECT count(*)::int AS n FROM events WHERE tenant_id = 'arc-gone'");
    expect(rows.rows[0].n).toBe(50);
    const left = await objectsOf("arc-gone");
    expect(left.length).toBeLessThan(6);
    expect(left.length).toBeGreaterThan(0);
    expect(cut.lines.find((l) => l.msg === "tenant deleted")).toBeUndefined();

    // Again, while a retention round (here: the test) holds the lifecycle lock: it waits for it.
    const again = handlers(archive);
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    const holder = withLifecycleLock(svc.pool, LIFECYCLE_LOCK_KEY, true, async () => {
      locked();
      await new Promise<void>((r) => {
        release = r;
      });
    });
    await isLocked;
    let finished = false;
    const rerun = again.deleteTenant("arc-gone", token).finally(() => {
      finished = true;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(finished).toBe(false);
    expect(await objectsOf("arc-gone")).toEqual(left);
    release();
    await holder;
    const res = await rerun;
    expect(res.deletedRows).toMatchObject({ events: 50n, archives: 3n, tenants: 1n });
    expect(res.deletedArchiveObjects).toBe(BigInt(left.length));
    expect(await objectsOf("arc-gone")).toEqual([]);
    expect(await objectsOf("arc-kept")).toHaveLength(6);
    expect(await new TenantStore(svc.pool).get("arc-gone")).toBeNull();
    // Its record: the operator's log, the objects as soon as they went, then the tenant.
    expect(again.lines.find((l) => l.msg === "tenant's archive objects deleted")).toMatchObject({
      level: "warn",
      tenantId: "arc-gone",
      deletedArchiveObjects: left.length,
    });
    expect(again.lines.find((l) => l.msg === "tenant deleted")).toMatchObject({
      level: "warn",
      tenantId: "arc-gone",
      deletedArchiveObjects: left.length,
    });
  });
});
