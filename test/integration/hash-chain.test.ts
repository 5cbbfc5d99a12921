// VerifyChain passes on untouched data and names the exact event after a
// row is altered, removed or reordered directly in PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

describe("hash chain verification", () => {
  let svc: TestService;
  let keys: TenantKeys;
  const verify = (body: unknown = {}) => connectCall<any>(svc.url, "auditlog.v1.QueryService/VerifyChain", body, keys.query);

  beforeAll(async () => {
    svc = await startTestService();
    keys = await createTenantWithKeys(svc.url, "chain");
    for (let batch = 0; batch < 4; batch++) {
      const events = Array.from({ length: 250 }, (_, i) => toConnectJson(makeEvent(batch * 250 + i, "chain")));
      const r = await connectCall(svc.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);
      expect(r.status).toBe(200);
    }
  });
  afterAll(() => svc?.stop());

  it("passes on untouched data and reports the head hash", async () => {
    const r = await verify();
    expect(r.body).toMatchObject({ ok: true, checked: "1000", fromSequence: "1", toSequence: "1000" });
    const head = await svc.pool.query("SELECT hash FROM chain_heads WHERE tenant_id = 'chain'");
    expect(r.body.headHash).toBe(head.rows[0].hash);
    const part = await verify({ fromSequence: "400", toSequence: "600" });
    expect(part.body).toMatchObject({ ok: true, checked: "201" });
  });

  it("names the exact event whose content was altered in the database", async () => {
    await svc.pool.query(
      "UPDATE events SET metadata = jsonb_set(metadata, '{plan}', '\"enterprise\"') WHERE tenant_id = 'chain' AND sequence = 537",
    );
    const r = await verify();
    expect(r.body.ok).toBeFalsy();
    expect(r.body.broken).toMatchObject({ sequence: "537", eventId: "chain-536" });
    expect(r.body.broken.reason).toMatch(/content altered/);
    // Ranges before the damage still verify.
    expect((await verify({ toSequence: "536" })).body.ok).toBe(true);
  });

  it("detects a removed event and a forged hash", async () => {
    await svc.pool.query("DELETE FROM events WHERE tenant_id = 'chain' AND sequence = 120");
    const r = await verify();
    expect(r.body.broken).toMatchObject({ sequence: "120" });
    expect(r.body.broken.reason).toMatch(/missing/);
    await svc.pool.query("UPDATE events SET hash = repeat('a', 64) WHERE tenant_id = 'chain' AND sequence = 50");
    const forged = await verify();
    expect(forged.body.broken).toMatchObject({ sequence: "50", eventId: "chain-49" });
  });
});
