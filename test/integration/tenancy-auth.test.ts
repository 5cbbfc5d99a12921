// Auth and tenant isolation: the tenant always comes from the key, and no
// parameter or page token of tenant A reaches tenant B's events.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

describe("authentication, scopes and tenant isolation", () => {
  let svc: TestService;
  let a: TenantKeys;
  let b: TenantKeys;
  const call = (proc: string, body: unknown, key?: string) => connectCall<any>(svc.url, proc, body, key);

  beforeAll(async () => {
    svc = await startTestService({ AUDITLOG_KEY_CACHE_MS: "0" });
    a = await createTenantWithKeys(svc.url, "tenant-a");
    b = await createTenantWithKeys(svc.url, "tenant-b");
    // The same event ids in both tenants: ids are unique per tenant only.
    for (const keys of [a, b]) {
      const events = Array.from({ length: 30 }, (_, i) => ({
        ...toConnectJson(makeEvent(i, "shared")),
        message: `secret of ${keys.tenantId}`,
      }));
      const r = await call("auditlog.v1.IngestService/Append", { events }, keys.ingest);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    }
    await call("auditlog.v1.IngestService/Append", { events: [toConnectJson(makeEvent(1, "only-b"))] }, b.ingest);
  });
  afterAll(() => svc?.stop());

  it("requires a valid key: UNAUTHENTICATED without one or with a bad one", async () => {
    expect((await call("auditlog.v1.QueryService/SearchEvents", {})).body.code).toBe("unauthenticated");
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, "alk_nope_nope")).body.code).toBe("unauthenticated");
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, a.query + "x")).body.code).toBe("unauthenticated");
  });

  it("enforces scopes: PERMISSION_DENIED for the wrong scope", async () => {
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, a.ingest)).body.code).toBe("permission_denied");
    expect((await call("auditlog.v1.IngestService/Append", { events: [toConnectJson(makeEvent(1, "x"))] }, a.query)).body.code).toBe(
      "permission_denied",
    );
    expect((await call("auditlog.v1.AdminService/CreateTenant", { id: "evil" }, a.admin)).body.code).toBe("permission_denied");
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, BOOTSTRAP_KEY)).body.code).toBe("permission_denied");
  });

  it("shows each tenant only its own events", async () => {
    const ra = await call("auditlog.v1.QueryService/SearchEvents", { pageSize: 1000, includeTotal: true }, a.query);
    expect(ra.body.total).toBe("30");
    expect(ra.body.events.every((e: any) => e.tenantId === "tenant-a" && e.event.message === "secret of tenant-a")).toBe(true);
    const got = await call("auditlog.v1.QueryService/GetEvent", { id: "shared-3" }, a.query);
    expect(got.body.event.event.message).toBe("secret of tenant-a");
  });

  it("cannot reach tenant B through ids, filters or page tokens", async () => {
    expect((await call("auditlog.v1.QueryService/GetEvent", { id: "only-b-1" }, a.query)).body.code).toBe("not_found");
    const byId = await call("auditlog.v1.QueryService/SearchEvents", { filter: { ids: ["only-b-1"] } }, a.query);
    expect(byId.body.events ?? []).toEqual([]);
    // A page token minted for tenant B is refused for tenant A.
    const pageB = await call("auditlog.v1.QueryService/SearchEvents", { pageSize: 5 }, b.query);
    expect(pageB.body.nextPageToken).toBeTruthy();
    const stolen = await call("auditlog.v1.QueryService/SearchEvents", { pageSize: 5, pageToken: pageB.body.nextPageToken }, a.query);
    expect(stolen.body.code).toBe("invalid_argument");
    // A forged token cannot name a tenant: it only carries a position.
    const forged = Buffer.from("1|x|0|0").toString("base64url");
    expect((await call("auditlog.v1.QueryService/SearchEvents", { pageToken: forged }, a.query)).body.code).toBe("invalid_argument");
    // The chain of A covers A's 30 events only.
    const chain = await call("auditlog.v1.QueryService/VerifyChain", {}, a.query);
    expect(chain.body).toMatchObject({ ok: true, checked: "30", toSequence: "30" });
  });

  it("keeps tenant A's key out of tenant B's keys", async () => {
    expect((await call("auditlog.v1.AdminService/ListApiKeys", { tenantId: "tenant-b" }, a.admin)).body.code).toBe("permission_denied");
    const bKeys = await call("auditlog.v1.AdminService/ListApiKeys", { tenantId: "tenant-b" }, BOOTSTRAP_KEY);
    const bKeyId = bKeys.body.keys[0].id;
    expect((await call("auditlog.v1.AdminService/RevokeApiKey", { keyId: bKeyId }, a.admin)).body.code).toBe("not_found");
  });

  it("row-level security hides other tenants even from a query without a tenant condition", async () => {
    const c = await svc.pool.connect();
    try {
      await c.query("BEGIN");
      await c.query("SET LOCAL ROLE auditlog_reader");
      await c.query("SELECT set_config('auditlog.tenant_id', 'tenant-a', true)");
      const r = await c.query("SELECT DISTINCT tenant_id FROM events");
      expect(r.rows).toEqual([{ tenant_id: "tenant-a" }]);
      await c.query("ROLLBACK");
    } finally {
      c.release();
    }
  });

  it("answers a write for a tenant without a chain head FAILED_PRECONDITION, not 'storage is unavailable; retry'", async () => {
    const gone = await createTenantWithKeys(svc.url, "tenant-gone");
    // As a broken restore or a hand-made deletion would leave it: the key works, the tenant cannot be written.
    await svc.pool.query("DELETE FROM chain_heads WHERE tenant_id = 'tenant-gone'");
    const r = await call("auditlog.v1.IngestService/Append", { events: [toConnectJson(makeEvent(1, "gone"))] }, gone.ingest);
    expect(r.body.code).toBe("failed_precondition");
    expect(r.body.message).toMatch(/^tenant "tenant-gone" does not exist/);
    expect(r.body.message).not.toMatch(/storage is unavailable/);
    // Other tenants keep writing.
    const ok = await call("auditlog.v1.IngestService/Append", { events: [toConnectJson(makeEvent(1, "after-gone"))] }, a.ingest);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });

  it("rotates and revokes keys: the old secret stops working at once", async () => {
    const created = await call("auditlog.v1.AdminService/CreateApiKey", { name: "rotating", scopes: ["SCOPE_QUERY"] }, a.admin);
    expect(created.body.key.tenantId).toBe("tenant-a");
    const oldSecret = created.body.secret;
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, oldSecret)).status).toBe(200);
    const rotated = await call("auditlog.v1.AdminService/RotateApiKey", { keyId: created.body.key.id }, a.admin);
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, oldSecret)).body.code).toBe("unauthenticated");
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, rotated.body.secret)).status).toBe(200);
    await call("auditlog.v1.AdminService/RevokeApiKey", { keyId: created.body.key.id }, a.admin);
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, rotated.body.secret)).body.code).toBe("unauthenticated");
    const listed = await call("auditlog.v1.AdminService/ListApiKeys", {}, a.admin);
    const entry = listed.body.keys.find((k: any) => k.id === created.body.key.id);
    expect(entry.revokedAt).toBeTruthy();
    expect(JSON.stringify(listed.body)).not.toContain(rotated.body.secret);
  });
});
