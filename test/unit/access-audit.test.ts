import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
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

describe("repeated refusals", () => {
  const setup = () => {
    const records: WriteItem["record"][] = [];
    const audit = new AccessAudit(
      async (items) => {
        records.push(...items.map((i) => i.record));
        return { committed: Promise.resolve(items.map(() => ({ status: "accepted" as const, sequence: 1n }))) };
      },
      silent,
      { foldMs: 1000 },
    );
    const call = { service: "auditlog.v1.QueryService", method: "GetEvent", request: '{"id":"x"}' };
    const refuse = (code: Code, principal = key) =>
      audit.recordFailure(call, new ConnectError("over the read rate", code), { principal, tenantId: "t1" });
    return { audit, records, refuse };
  };

  it("are recorded first, then folded into one record per second per caller and call", async () => {
    vi.useFakeTimers();
    try {
      const { records, refuse } = setup();
      await refuse(Code.ResourceExhausted);
      expect(records).toHaveLength(1);
      expect(records[0]!.metadata).toMatchObject({ code: "resource_exhausted" });
      expect(records[0]!.metadata).not.toHaveProperty("repeated");
      for (let i = 0; i < 50; i++) await refuse(Code.ResourceExhausted);
      // Another caller has a window of its own.
      await refuse(Code.ResourceExhausted, { ...key, keyId: "k2" });
      expect(records).toHaveLength(2);
      await vi.advanceTimersByTimeAsync(1000);
      expect(records).toHaveLength(3);
      expect(records[2]).toMatchObject({ outcome: "FAILURE", message: "GetEvent by key k1: failed (resource_exhausted) 50 more times" });
      expect(records[2]!.metadata).toMatchObject({ repeated: 50, query: '{"id":"x"}', reason: "over the read rate" });
      expect(Date.parse(records[2]!.metadata!.repeated_to as string)).toBeGreaterThanOrEqual(
        Date.parse(records[2]!.metadata!.repeated_from as string),
      );
      // A quiet window closes without a record; the next refusal is recorded at once again.
      await vi.advanceTimersByTimeAsync(3000);
      expect(records).toHaveLength(3);
      await refuse(Code.ResourceExhausted);
      expect(records).toHaveLength(4);
      expect(records[3]!.metadata).not.toHaveProperty("repeated");
    } finally {
      vi.useRealTimers();
    }
  });

  it("each code has a window of its own", async () => {
    const { audit, records, refuse } = setup();
    for (let i = 0; i < 3; i++) await refuse(Code.PermissionDenied);
    for (let i = 0; i < 2; i++) await refuse(Code.InvalidArgument);
    expect(records.map((r) => r.metadata!.code)).toEqual(["permission_denied", "invalid_argument"]);
    expect(records[0]!.outcome).toBe("DENIED");
    await audit.close();
    expect(records.slice(2).map((r) => [r.metadata!.code, r.metadata!.repeated])).toEqual([
      ["permission_denied", 2],
      ["invalid_argument", 1],
    ]);
  });

  it("close() records what is folded so far", async () => {
    const { audit, records, refuse } = setup();
    for (let i = 0; i < 4; i++) await refuse(Code.ResourceExhausted);
    expect(records).toHaveLength(1);
    await audit.close();
    expect(records).toHaveLength(2);
    expect(records[1]!.metadata).toMatchObject({ repeated: 3 });
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
