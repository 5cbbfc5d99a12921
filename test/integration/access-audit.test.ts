// The access audit and the tenant lifecycle over the real service
// (PostgreSQL, every transport the calls use): every read and admin action
// is an event in the tenant's own log, refusals included; producers cannot
// write that namespace; a suspended tenant is refused and intact once
// resumed; a deletion needs its confirmation, and then nothing of the tenant
// remains in PostgreSQL.
import type * as grpc from "@grpc/grpc-js";
import { Client } from "@elastic/elasticsearch";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { bearer, type GrpcStub, loadAuditlogStubs, newClient } from "../../scripts/lib/grpc-client.ts";
import { tenantTables } from "../../src/store/tenant-store.ts";
import { makeEvent, toConnectJson, toProtoLoader } from "../support/events.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const EVENTS = 7;

describe("access audit and tenant lifecycle", () => {
  let svc: TestService;
  let a: TenantKeys;
  let query: GrpcStub;
  let ingest: GrpcStub;
  const call = (proc: string, body: unknown, key?: string) => connectCall<any>(svc.url, proc, body, key);
  const keyId = (secret: string) => secret.split("_")[1]!;

  /** The tenant's access records, oldest first (read with the query key, which is itself recorded). */
  async function accessRecords(keys: TenantKeys): Promise<any[]> {
    const r = await call(
      "auditlog.v1.QueryService/SearchEvents",
      { filter: { query: "action:auditlog.*" }, order: "SORT_ORDER_ASCENDING", pageSize: 1000 },
      keys.query,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return (r.body.events ?? []).map((e: any) => ({ ...e.event, sequence: e.sequence }));
  }

  function grpcExport(secret: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      const stream = query.ExportEvents({ format: "EXPORT_FORMAT_NDJSON" }, bearer(secret));
      stream.on("data", (m: { chunk: Buffer }) => parts.push(m.chunk));
      stream.on("error", reject);
      stream.on("end", () => resolve(Buffer.concat(parts)));
    });
  }

  function grpcIngest(secret: string, events: Record<string, unknown>[]): Promise<any> {
    return new Promise((resolve, reject) => {
      const c = ingest.Ingest(bearer(secret), (err: grpc.ServiceError | null, res: any) => (err ? reject(err) : resolve(res.summary)));
      c.write({ events });
      c.end();
    });
  }

  const producerCount = async (keys: TenantKeys) =>
    (await call("auditlog.v1.QueryService/SearchEvents", { filter: { query: "source:billing-api" }, includeTotal: true }, keys.query)).body
      .total;

  beforeAll(async () => {
    // A long key cache: suspension must still hold at once on this replica.
    svc = await startTestService({ AUDITLOG_KEY_CACHE_MS: "60000", AUDITLOG_ACCESS_AUDIT: "on" });
    a = await createTenantWithKeys(svc.url, "audit-a");
    const events = Array.from({ length: EVENTS }, (_, i) => toConnectJson(makeEvent(i, "aud")));
    expect((await call("auditlog.v1.IngestService/Append", { events }, a.ingest)).status).toBe(200);
    const stubs = loadAuditlogStubs();
    query = newClient(stubs.QueryService, svc.url);
    ingest = newClient(stubs.IngestService, svc.url);
  });
  afterAll(async () => {
    query?.close();
    ingest?.close();
    await svc?.stop();
  });

  it("records every read and admin action in the tenant's log, with who, the call, the query, the count and the outcome", async () => {
    const before = (await accessRecords(a)).length;
    const search = await call("auditlog.v1.QueryService/SearchEvents", { filter: { query: "source:billing-api" }, pageSize: 3 }, a.query);
    expect(search.body.events).toHaveLength(3);
    expect((await call("auditlog.v1.QueryService/GetEvent", { id: "aud-2" }, a.query)).status).toBe(200);
    expect((await call("auditlog.v1.QueryService/GetStats", {}, a.query)).status).toBe(200);
    expect((await call("auditlog.v1.QueryService/VerifyChain", {}, a.query)).body.ok).toBe(true);
    expect((await call("auditlog.v1.QueryService/GetIndexStatus", {}, a.query)).status).toBe(200);
    const rpcExport = (await grpcExport(a.query)).toString().trim().split("\n");
    const http = await fetch(`${svc.url}/v1/export?format=csv&query=source:billing-api`, {
      headers: { authorization: `Bearer ${a.query}` },
    });
    expect(http.status).toBe(200);
    await http.text();
    expect((await call("auditlog.v1.AdminService/ListApiKeys", {}, a.admin)).status).toBe(200);
    const created = await call("auditlog.v1.AdminService/CreateApiKey", { tenantId: "audit-a", scopes: ["SCOPE_QUERY"] }, BOOTSTRAP_KEY);
    const revoked = await call("auditlog.v1.AdminService/RevokeApiKey", { keyId: created.body.key.id }, BOOTSTRAP_KEY);
    expect(revoked.status).toBe(200);

    const records = (await accessRecords(a)).slice(before);
    const by = (action: string) => records.filter((r) => r.action === action);
    const one = (action: string) => {
      const found = by(action);
      expect(found, `${action} in ${JSON.stringify(records.map((r) => r.action))}`).toHaveLength(1);
      return found[0];
    };
    // [0] is the read of the audit log that counted `before`.
    const s = by("auditlog.query.search_events")[1];
    expect(s).toMatchObject({
      outcome: "OUTCOME_SUCCESS",
      actor: { id: keyId(a.query), type: "ACTOR_TYPE_SERVICE" },
      metadata: {
        call: "auditlog.v1.QueryService/SearchEvents",
        principal: { kind: "api_key", key_id: keyId(a.query) },
        results: 3,
        code: "ok",
      },
    });
    expect(JSON.parse(s.metadata.query)).toMatchObject({ filter: { query: "source:billing-api" }, pageSize: 3 });
    expect(one("auditlog.query.get_event").metadata.results).toBe(1);
    expect(one("auditlog.query.get_stats").metadata.results).toBeGreaterThanOrEqual(EVENTS);
    expect(one("auditlog.query.verify_chain").metadata.results).toBeGreaterThanOrEqual(EVENTS);
    one("auditlog.query.get_index_status");
    const exports = by("auditlog.query.export_events");
    expect(exports, JSON.stringify(records.map((r) => [r.action, r.metadata]))).toHaveLength(2);
    expect(exports[0].metadata).toMatchObject({ results: rpcExport.length });
    expect(exports[1].metadata).toMatchObject({ via: "GET /v1/export", results: EVENTS, code: "ok" });
    expect(JSON.parse(exports[1].metadata.query)).toMatchObject({ format: "EXPORT_FORMAT_CSV" });
    expect(one("auditlog.admin.list_api_keys").actor.id).toBe(keyId(a.admin));
    expect(one("auditlog.admin.create_api_key")).toMatchObject({ actor: { id: "operator", type: "ACTOR_TYPE_SYSTEM" } });
    expect(one("auditlog.admin.revoke_api_key").metadata.query).toContain(created.body.key.id);
    // Reading the audit log is itself recorded (the accessRecords search before), and recording adds nothing more.
    expect(records[0].action).toBe("auditlog.query.search_events");
    expect(JSON.parse(records[0].metadata.query).filter.query).toBe("action:auditlog.*");
    expect(records).toHaveLength(11);
    // The records are on the hash chain like any event.
    expect((await call("auditlog.v1.QueryService/VerifyChain", {}, a.query)).body.ok).toBe(true);
  });

  it("records refusals of an authenticated caller in its tenant, and unauthenticated calls nowhere", async () => {
    const before = (await accessRecords(a)).length;
    expect((await call("auditlog.v1.QueryService/SearchEvents", { filter: { query: "actor.id:user-1" } }, a.ingest)).body.code).toBe(
      "permission_denied",
    );
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, "alk_nobody_nothing")).body.code).toBe("unauthenticated");
    expect((await call("auditlog.v1.QueryService/SearchEvents", {})).body.code).toBe("unauthenticated");
    const http = await fetch(`${svc.url}/v1/export`, { headers: { authorization: `Bearer ${a.ingest}` } });
    expect(http.status).toBe(403);
    const records = (await accessRecords(a)).slice(before);
    // The previous read of the log, the two refusals; the unauthenticated calls left nothing.
    expect(records.map((r) => r.action)).toEqual([
      "auditlog.query.search_events",
      "auditlog.query.search_events",
      "auditlog.query.export_events",
    ]);
    expect(records[1]).toMatchObject({
      outcome: "OUTCOME_DENIED",
      severity: "SEVERITY_WARNING",
      actor: { id: keyId(a.ingest) },
      metadata: { code: "permission_denied" },
    });
    expect(JSON.parse(records[1].metadata.query).filter.query).toBe("actor.id:user-1");
    expect(records[2]).toMatchObject({ outcome: "OUTCOME_DENIED", metadata: { via: "GET /v1/export", code: "permission_denied" } });
  });

  it("refuses auditlog.* from producers with INVALID_ARGUMENT on field action, over Append and Ingest", async () => {
    const forged = { ...toConnectJson(makeEvent(100, "forged")), action: "auditlog.query.search_events" };
    const r = await call("auditlog.v1.IngestService/Append", { events: [forged] }, a.ingest);
    expect(r.body.code).toBe("invalid_argument");
    expect(r.body.message).toMatch(/action: .*reserved/);
    const mixed = await call("auditlog.v1.IngestService/Append", { events: [forged, toConnectJson(makeEvent(101, "fine"))] }, a.ingest);
    expect(mixed.body.summary.results[0]).toMatchObject({ status: "EVENT_STATUS_REJECTED", field: "action" });
    const streamed = await grpcIngest(a.ingest, [{ ...toProtoLoader(makeEvent(102, "forged")), action: "auditlog.admin.create_tenant" }]);
    expect(streamed).toMatchObject({ accepted: "0", rejected: "1" });
    expect(streamed.results[0]).toMatchObject({
      status: "EVENT_STATUS_REJECTED",
      field: "action",
      reason: expect.stringMatching(/reserved/),
    });
    const forgedStored = await call("auditlog.v1.QueryService/SearchEvents", { filter: { ids: ["forged-100", "forged-102"] } }, a.query);
    expect(forgedStored.body.events ?? []).toEqual([]);
  });

  it("suspends a tenant: ingest and reads refused with FAILED_PRECONDITION, at once; resumed, its data is intact", async () => {
    const count = await producerCount(a);
    const suspended = await call("auditlog.v1.AdminService/SuspendTenant", { tenantId: "audit-a" }, BOOTSTRAP_KEY);
    expect(suspended.body.tenant.suspendedAt).toBeTruthy();
    const append = await call("auditlog.v1.IngestService/Append", { events: [toConnectJson(makeEvent(200, "late"))] }, a.ingest);
    expect(append.body).toMatchObject({ code: "failed_precondition", message: expect.stringMatching(/tenant suspended/) });
    await expect(grpcIngest(a.ingest, [toProtoLoader(makeEvent(201, "late"))])).rejects.toMatchObject({ code: 9 });
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, a.query)).body.code).toBe("failed_precondition");
    expect((await fetch(`${svc.url}/v1/export`, { headers: { authorization: `Bearer ${a.query}` } })).status).toBe(400);
    expect((await call("auditlog.v1.AdminService/ListApiKeys", {}, a.admin)).body.code).toBe("failed_precondition");

    const resumed = await call("auditlog.v1.AdminService/ResumeTenant", { tenantId: "audit-a" }, BOOTSTRAP_KEY);
    expect(resumed.status).toBe(200);
    expect(resumed.body.tenant.suspendedAt).toBeUndefined();
    expect(await producerCount(a)).toBe(count);
    expect((await call("auditlog.v1.QueryService/VerifyChain", {}, a.query)).body.ok).toBe(true);
    const records = await accessRecords(a);
    const actions = records.map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(["auditlog.admin.suspend_tenant", "auditlog.admin.resume_tenant"]));
    expect(records.find((r) => r.outcome === "OUTCOME_DENIED" && r.metadata.code === "failed_precondition")).toBeTruthy();
  });

  it("updates a tenant's name and settings", async () => {
    const r = await call(
      "auditlog.v1.AdminService/UpdateTenant",
      { tenantId: "audit-a", name: "Audit A", settings: { retentionDays: 30 } },
      BOOTSTRAP_KEY,
    );
    expect(r.body.tenant).toMatchObject({ id: "audit-a", name: "Audit A", settings: { retentionDays: 30 } });
    expect((await call("auditlog.v1.AdminService/UpdateTenant", { tenantId: "audit-a", name: "x" }, a.admin)).body.code).toBe(
      "permission_denied",
    );
    expect((await call("auditlog.v1.AdminService/UpdateTenant", { tenantId: "nope-nope" }, BOOTSTRAP_KEY)).body.code).toBe("not_found");
  });

  it("deletes a tenant only suspended and with its confirmation; then nothing of it remains in PostgreSQL", async () => {
    const d = await createTenantWithKeys(svc.url, "doomed");
    await call("auditlog.v1.IngestService/Append", { events: [toConnectJson(makeEvent(1, "d"))] }, d.ingest);
    await call("auditlog.v1.QueryService/SearchEvents", {}, d.query);
    const req = (tenantId: string) => call("auditlog.v1.AdminService/RequestTenantDeletion", { tenantId }, BOOTSTRAP_KEY);
    const del = (tenantId: string, confirmationToken: string) =>
      call("auditlog.v1.AdminService/DeleteTenant", { tenantId, confirmationToken }, BOOTSTRAP_KEY);

    expect((await req("doomed")).body.code).toBe("failed_precondition");
    expect((await del("doomed", "del_guess")).body.code).toBe("failed_precondition");
    await call("auditlog.v1.AdminService/SuspendTenant", { tenantId: "doomed" }, BOOTSTRAP_KEY);
    const pending = await req("doomed");
    expect(pending.body.confirmationToken).toMatch(/^del_/);
    expect(pending.body.tenant.deletionExpiresAt).toBeTruthy();
    expect((await del("doomed", "del_guess")).body.code).toBe("failed_precondition");
    // Resuming cancels the pending deletion: its token is void.
    await call("auditlog.v1.AdminService/ResumeTenant", { tenantId: "doomed" }, BOOTSTRAP_KEY);
    expect((await del("doomed", pending.body.confirmationToken)).body.code).toBe("failed_precondition");
    await call("auditlog.v1.AdminService/SuspendTenant", { tenantId: "doomed" }, BOOTSTRAP_KEY);
    const token = (await req("doomed")).body.confirmationToken;
    const done = await del("doomed", token);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(Number(done.body.deletedRows.events)).toBeGreaterThan(1);

    for (const table of await tenantTables(svc.pool)) {
      const left = await svc.pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE tenant_id = 'doomed'`);
      expect(left.rows[0].n, table).toBe(0);
    }
    expect((await svc.pool.query("SELECT count(*)::int AS n FROM tenants WHERE id = 'doomed'")).rows[0].n).toBe(0);
    expect((await call("auditlog.v1.QueryService/SearchEvents", {}, d.query)).body.code).toBe("unauthenticated");
    // The other tenant is untouched.
    expect((await call("auditlog.v1.QueryService/VerifyChain", {}, a.query)).body.ok).toBe(true);
  });
});

describe("tenant deletion with Elasticsearch", () => {
  let svc: TestService;
  const call = (proc: string, body: unknown, key?: string) => connectCall<any>(svc.url, proc, body, key);

  beforeAll(async () => {
    svc = await startTestService({ ELASTICSEARCH_URL: inject("elasticsearchUrl"), AUDITLOG_RECONCILE_INTERVAL_MS: "0" });
  });
  afterAll(() => svc?.stop());

  it("removes the tenant's search documents (no delete-by-query here), and only its own", async () => {
    const gone = await createTenantWithKeys(svc.url, "es-gone");
    const kept = await createTenantWithKeys(svc.url, "es-kept");
    let position = "0";
    for (const keys of [gone, kept]) {
      const events = Array.from({ length: 1200 }, (_, i) => toConnectJson(makeEvent(i, "es")));
      for (let i = 0; i < events.length; i += 400) {
        const r = await call("auditlog.v1.IngestService/Append", { events: events.slice(i, i + 400) }, keys.ingest);
        position = r.body.summary.position;
      }
      // Waits until the index holds them.
      const r = await call("auditlog.v1.QueryService/SearchEvents", { minPosition: position, includeTotal: true }, keys.query);
      expect(r.body.total).toBe("1200");
    }
    const client = new Client({ node: inject("elasticsearchUrl") });
    const count = async (tenant: string) => {
      await client.indices.refresh({ index: "auditlog-events" });
      return (await client.count({ index: "auditlog-events", query: { term: { tenant_id: tenant } } })).count;
    };
    expect(await count("es-gone")).toBe(1200);
    await call("auditlog.v1.AdminService/SuspendTenant", { tenantId: "es-gone" }, BOOTSTRAP_KEY);
    const token = (await call("auditlog.v1.AdminService/RequestTenantDeletion", { tenantId: "es-gone" }, BOOTSTRAP_KEY)).body
      .confirmationToken;
    const done = await call("auditlog.v1.AdminService/DeleteTenant", { tenantId: "es-gone", confirmationToken: token }, BOOTSTRAP_KEY);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body.deletedDocuments).toBe("1200");
    expect(await count("es-gone")).toBe(0);
    expect(await count("es-kept")).toBe(1200);
    await client.close();
  });
});
