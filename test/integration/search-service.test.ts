// The service end to end with Elasticsearch configured: what a reader sees
// right after an ingest acknowledgement (read-your-writes through
// min_position), query strings, index status, stats and the HTTP download.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

describe("search through Elasticsearch, end to end", () => {
  let svc: TestService;
  let keys: TenantKeys;
  let position = "0";
  const search = (body: unknown) => connectCall<any>(svc.url, "auditlog.v1.QueryService/SearchEvents", body, keys.query);

  beforeAll(async () => {
    svc = await startTestService({ ELASTICSEARCH_URL: inject("elasticsearchUrl"), AUDITLOG_RECONCILE_INTERVAL_MS: "0" });
    keys = await createTenantWithKeys(svc.url, `es-e2e-${Date.now()}`);
    expect(svc.backend.name).toBe("elasticsearch");
  });
  afterAll(() => svc?.stop());

  it("a search carrying the ingest position sees that ingest's events", async () => {
    for (let round = 0; round < 5; round++) {
      const events = Array.from({ length: 200 }, (_, i) => toConnectJson(makeEvent(round * 200 + i, "ryw")));
      const r = await connectCall<any>(svc.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);
      expect(r.status).toBe(200);
      position = r.body.summary.position;
      const found = await search({ filter: { ids: [events[199]!.id as string] }, minPosition: position, includeTotal: true });
      expect(found.status, JSON.stringify(found.body)).toBe(200);
      expect(found.body.events.map((e: any) => e.event.id)).toEqual([events[199]!.id]);
      const all = await search({ minPosition: position, includeTotal: true, pageSize: 1 });
      expect(all.body.total).toBe(String((round + 1) * 200));
    }
  });

  it("answers the human query syntax and reports bad syntax with its position", async () => {
    const r = await search({ filter: { query: 'action:customer.* severity>=ERROR "user 3"' }, pageSize: 1000, minPosition: position });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.events.length).toBeGreaterThan(0);
    for (const e of r.body.events) {
      expect(e.event.action.startsWith("customer.")).toBe(true);
      expect(["SEVERITY_ERROR", "SEVERITY_CRITICAL"]).toContain(e.event.severity);
      expect(e.event.message).toMatch(/user 3\b/);
    }
    const bad = await search({ filter: { query: "actr.id:u1" } });
    expect(bad.body.code).toBe("invalid_argument");
    expect(bad.body.message).toContain("position 0");
  });

  it("reports the index status with no lag once caught up", async () => {
    const r = await connectCall<any>(svc.url, "auditlog.v1.QueryService/GetIndexStatus", {}, keys.query);
    expect(r.body).toMatchObject({ backend: "elasticsearch", committedPosition: position, indexedPosition: position, lagEvents: "0" });
  });

  it("counts over time and top values", async () => {
    const r = await connectCall<any>(
      svc.url,
      "auditlog.v1.QueryService/GetStats",
      { interval: "STATS_INTERVAL_HOUR", top: 3, filter: { query: "action:invoice.*" } },
      keys.query,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(Number(r.body.total)).toBe(200); // makeEvent cycles 5 actions: 1 in 5 is invoice.billed
    const sum = r.body.histogram.reduce((s: number, b: any) => s + Number(b.count), 0);
    expect(sum).toBe(200);
    expect(r.body.top[0]).toMatchObject({ field: "action", values: [{ value: "invoice.billed", count: "200" }] });
  });

  it("downloads the same events as CSV over plain HTTP", async () => {
    const res = await fetch(`${svc.url}/v1/export?format=csv&order=asc&query=${encodeURIComponent("action:user.login")}`, {
      headers: { authorization: `Bearer ${keys.query}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/csv");
    const lines = (await res.text()).trimEnd().split("\r\n");
    expect(lines[0]).toMatch(/^tenant_id,id,sequence,/);
    expect(lines.length - 1).toBe(200);
    const unauth = await fetch(`${svc.url}/v1/export?format=csv`);
    expect(unauth.status).toBe(401);
  });
});
