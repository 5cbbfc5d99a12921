// Bad input is rejected precisely (code, field, reason), per event in a
// batch, and changes nothing else; the server keeps serving.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

describe("input validation", () => {
  let svc: TestService;
  let keys: TenantKeys;
  const append = (events: unknown[]) =>
    connectCall<{ summary: Record<string, unknown> & { results: Record<string, unknown>[] } }>(
      svc.url,
      "auditlog.v1.IngestService/Append",
      { events },
      keys.ingest,
    );
  const count = async () => (await svc.pool.query("SELECT count(*)::int AS n FROM events")).rows[0].n as number;

  beforeAll(async () => {
    svc = await startTestService();
    keys = await createTenantWithKeys(svc.url, "validation");
  });
  afterAll(() => svc?.stop());

  it("rejects only the bad events of a batch, naming each field", async () => {
    const good = toConnectJson(makeEvent(1, "mixed"));
    const badAction = { ...toConnectJson(makeEvent(2, "mixed")), action: "Customer Created" };
    const noActor = { ...toConnectJson(makeEvent(3, "mixed")), actor: undefined };
    const badIp = toConnectJson(makeEvent(4, "mixed"));
    (badIp.actor as Record<string, unknown>).ip = "1.2.3";
    const deep = { ...toConnectJson(makeEvent(5, "mixed")), metadata: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } };
    const before = await count();
    const r = await append([good, badAction, noActor, badIp, deep]);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.summary).toMatchObject({ accepted: "1", rejected: "4" });
    const byIndex = Object.fromEntries(r.body.summary.results.map((x) => [x.index as number, x]));
    expect(byIndex[1]).toMatchObject({ status: "EVENT_STATUS_REJECTED", field: "action", id: "mixed-2" });
    expect(byIndex[2]).toMatchObject({ status: "EVENT_STATUS_REJECTED", field: "actor" });
    expect(byIndex[3]).toMatchObject({ status: "EVENT_STATUS_REJECTED", field: "actor.ip" });
    expect(byIndex[4]).toMatchObject({ status: "EVENT_STATUS_REJECTED", field: "metadata.a.b.c.d.e.f.g.h" });
    expect(String(byIndex[1]!.reason)).toMatch(/pattern/);
    expect(await count()).toBe(before + 1);
  });

  it("fails a batch in which nothing is valid with INVALID_ARGUMENT naming the field", async () => {
    const before = await count();
    const r = await append([{ ...toConnectJson(makeEvent(9, "allbad")), occurredAt: undefined }]);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe("invalid_argument");
    expect(r.body.message).toContain("occurred_at");
    expect(await count()).toBe(before);
  });

  it("rejects an event larger than 64 KiB and a message over 4096 characters", async () => {
    const huge = { ...toConnectJson(makeEvent(10, "big")), metadata: { blob: "x".repeat(70_000) } };
    const long = { ...toConnectJson(makeEvent(11, "big")), message: "y".repeat(4097) };
    const r = await append([huge, long, toConnectJson(makeEvent(12, "big"))]);
    expect(r.status).toBe(200);
    expect(r.body.summary.results).toEqual([
      expect.objectContaining({ index: 0, status: "EVENT_STATUS_REJECTED", reason: expect.stringMatching(/65536|64 KiB|limit/) }),
      expect.objectContaining({ index: 1, status: "EVENT_STATUS_REJECTED", field: "message" }),
    ]);
  });

  it("answers wrongly typed and malformed JSON with INVALID_ARGUMENT", async () => {
    const wrongType = await append([{ ...toConnectJson(makeEvent(13, "typed")), severity: 42.5 }]);
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.code).toBe("invalid_argument");
    const unknownField = await append([{ ...toConnectJson(makeEvent(14, "typed")), colour: "red" }]);
    expect(unknownField.body.code).toBe("invalid_argument");
    expect(unknownField.body.message).toContain("colour");
    const res = await fetch(`${svc.url}/auditlog.v1.IngestService/Append`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.ingest}` },
      body: '{"events": [ {"id": ',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("rejects empty and oversized batches as a whole", async () => {
    const empty = await append([]);
    expect(empty.body.code).toBe("invalid_argument");
    expect(empty.body.message).toContain("events");
    const many = await append(Array.from({ length: 1001 }, (_, i) => toConnectJson(makeEvent(i, "many"))));
    expect(many.body.code).toBe("invalid_argument");
    expect(await svc.pool.query("SELECT 1 FROM event_ids WHERE event_id LIKE 'many-%'")).toMatchObject({ rowCount: 0 });
  });

  it("answers a request over the size limit with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const r = await connectCall(svc.url, "auditlog.v1.IngestService/Append", { events: [], pad: "z".repeat(9 * 1024 * 1024) }, keys.ingest);
    expect(r.body.code).toBe("resource_exhausted");
    const ok = await append([toConnectJson(makeEvent(99, "after"))]);
    expect(ok.status).toBe(200);
  });

  it("validates search requests with field paths", async () => {
    const r = await connectCall(
      svc.url,
      "auditlog.v1.QueryService/SearchEvents",
      { filter: { actions: ["Bad Action"] }, pageSize: 5000 },
      keys.query,
    );
    expect(r.body.code).toBe("invalid_argument");
    expect(r.body.message).toContain("filter.actions[0]");
    expect(r.body.message).toContain("page_size");
  });
});
