import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { TenantStatus } from "../../src/auth/tenant-status.ts";
import { ExportRecordCounter } from "../../src/domain/export-record-count.ts";
import { isReservedAction } from "../../src/domain/event-validation.ts";
import { AccessAudit, accessAction, accessRecord } from "../../src/services/access-audit.ts";
import type { WriteItem } from "../../src/store/event-writer.ts";

const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const key = { kind: "key" as const, keyId: "k1", tenantId: "t1", scopes: new Set(["query" as const]) };

describe("access records", () => {
  it("name the call in the reserved namespace", () => {
    expect(accessAction("auditlog.v1.QueryService", "SearchEvents")).toBe("auditlog.query.search_events");
    expect(accessAction("auditlog.v1.AdminService", "RequestTenantDeletion")).toBe("auditlog.admin.request_tenant_deletion");
    expect(isReservedAction(accessAction("auditlog.v1.QueryService", "GetEvent"))).toBe(true);
  });

  it("say who, which call, the query, the count and the outcome", () => {
    const ok = accessRecord({
      tenantId: "t1",
      principal: key,
      service: "auditlog.v1.QueryService",
      method: "GetEvent",
      request: '{"id":"x"}',
      results: 1,
    });
    expect(ok).toMatchObject({
      action: "auditlog.query.get_event",
      actor: { id: "k1", type: "SERVICE" },
      outcome: "SUCCESS",
      severity: "INFO",
      metadata: { call: "auditlog.v1.QueryService/GetEvent", query: '{"id":"x"}', results: 1, code: "ok" },
    });
    const refused = accessRecord({
      tenantId: "t1",
      principal: { kind: "token", subject: "alice", role: "auditor", tenants: ["t1"], tenantId: "t1" },
      service: "auditlog.v1.AdminService",
      method: "CreateApiKey",
      request: "x".repeat(5000),
      results: null,
      error: { code: Code.PermissionDenied, message: "no", denied: true },
    });
    expect(refused).toMatchObject({ outcome: "DENIED", severity: "WARNING", actor: { id: "alice", type: "USER", name: "auditor" } });
    expect(refused.metadata).toMatchObject({ code: "permission_denied", reason: "no", principal: { kind: "token", subject: "alice" } });
    expect((refused.metadata!.query as string).length).toBeLessThan(4200);
  });

  it("are committed before record() resolves, and a failed commit is UNAVAILABLE", async () => {
    const submitted: WriteItem[] = [];
    const audit = new AccessAudit(async (items) => {
      submitted.push(...items);
      return { committed: Promise.resolve([{ status: "accepted" as const, sequence: 1n }]) };
    }, silent);
    await audit.record({
      tenantId: "t1",
      principal: key,
      service: "auditlog.v1.QueryService",
      method: "GetStats",
      request: "{}",
      results: 3,
    });
    expect(submitted.map((i) => [i.tenantId, i.record.action])).toEqual([["t1", "auditlog.query.get_stats"]]);
    const failing = new AccessAudit(async () => ({ committed: Promise.reject(new Error("db down")) }), silent);
    const err = await failing
      .record({ tenantId: "t1", principal: key, service: "auditlog.v1.QueryService", method: "GetStats", request: "{}", results: 3 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    // A refusal's record failing never hides the refusal.
    await expect(
      failing.recordFailure({ service: "s", method: "m", request: null }, new Error("x"), { principal: key, tenantId: "t1" }),
    ).resolves.toBeUndefined();
  });
});

describe("ExportRecordCounter", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  it("counts NDJSON lines across chunk boundaries", () => {
    const c = new ExportRecordCounter("ndjson");
    c.add(bytes('{"a":1}\n{"a"'));
    c.add(bytes(":2}\n"));
    expect(c.records).toBe(2);
  });
  it("counts CSV records, not the header nor line breaks inside quoted fields", () => {
    const c = new ExportRecordCounter("csv");
    c.add(bytes('id,message\n1,"two\nlines ""quoted"""\n2,plain\n'));
    expect(c.records).toBe(2);
    expect(new ExportRecordCounter("csv").records).toBe(0);
  });
});

describe("TenantStatus", () => {
  it("caches a tenant's state for the TTL, and forget() makes a change hold at once", async () => {
    let suspendedAt: Date | null | undefined = null;
    let lookups = 0;
    const s = new TenantStatus(async () => (lookups++, suspendedAt), 1000);
    expect(await s.state("t", 0)).toBe("active");
    suspendedAt = new Date();
    expect(await s.state("t", 500)).toBe("active"); // cached
    expect(await s.state("t", 1000)).toBe("suspended"); // TTL passed
    suspendedAt = null;
    s.forget("t");
    expect(await s.state("t", 1001)).toBe("active");
    suspendedAt = undefined;
    s.forget("t");
    expect(await s.state("t", 1002)).toBe("missing");
    expect(lookups).toBe(4);
  });
});
