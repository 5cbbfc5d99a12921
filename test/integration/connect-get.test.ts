// The side-effect-free unary RPCs (idempotency_level NO_SIDE_EFFECTS in the
// contract) answer Connect GET requests, as curl or a browser sends them:
// GET /<service>/<method>?connect=v1&encoding=json&message=<URL-encoded JSON>.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const ORIGIN = "https://console.example.com";

function getUrl(base: string, procedure: string, message: unknown, encoding: "json" | "proto" = "json"): string {
  const q = new URLSearchParams({ connect: "v1", encoding, message: JSON.stringify(message) });
  return `${base}/${procedure}?${q}`;
}

describe("Connect GET for the reads", () => {
  let service: TestService;
  let keys: TenantKeys;
  let position = "";
  beforeAll(async () => {
    service = await startTestService({ CORS_ORIGINS: ORIGIN });
    keys = await createTenantWithKeys(service.url, "connect-get");
    const res = await fetch(`${service.url}/auditlog.v1.IngestService/Append`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.all}` },
      body: JSON.stringify({
        events: [{ id: "get-1", occurredAt: "2026-05-06T07:08:09Z", action: "customer.created", actor: { id: "user-1" } }],
      }),
    });
    expect(res.status).toBe(200);
    position = ((await res.json()) as { summary: { position: string } }).summary.position;
  });
  afterAll(async () => {
    await service?.stop();
  });

  it("SearchEvents over GET finds the appended event, and browsers of allowed origins may read the answer", async () => {
    const res = await fetch(
      getUrl(service.url, "auditlog.v1.QueryService/SearchEvents", { filter: { actions: ["customer.created"] }, minPosition: position }),
      { headers: { authorization: `Bearer ${keys.query}`, origin: ORIGIN } },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    const body = (await res.json()) as { events: { event: { id: string } }[] };
    expect(body.events.map((e) => e.event.id)).toEqual(["get-1"]);
  });

  it("GetEvent and ListTenants answer GET too", async () => {
    const ev = await fetch(getUrl(service.url, "auditlog.v1.QueryService/GetEvent", { id: "get-1" }), {
      headers: { authorization: `Bearer ${keys.query}` },
    });
    expect(ev.status).toBe(200);
    expect(((await ev.json()) as { event: { sequence: string } }).event.sequence).toBe(position);
    const tenants = await fetch(getUrl(service.url, "auditlog.v1.AdminService/ListTenants", {}), {
      headers: { authorization: `Bearer ${BOOTSTRAP_KEY}` },
    });
    expect(tenants.status).toBe(200);
  });

  it("a bad GET is a Connect error with its details; writes refuse GET", async () => {
    const bad = await fetch(getUrl(service.url, "auditlog.v1.QueryService/SearchEvents", { filter: { query: "action:(" } }), {
      headers: { authorization: `Bearer ${keys.query}` },
    });
    expect(bad.status).toBe(400);
    const err = (await bad.json()) as { code: string; details: { type: string }[] };
    expect(err.code).toBe("invalid_argument");
    expect(err.details.map((d) => d.type)).toContain("google.rpc.BadRequest");

    const write = await fetch(getUrl(service.url, "auditlog.v1.IngestService/Append", { events: [] }), {
      headers: { authorization: `Bearer ${keys.all}` },
    });
    expect(write.status).toBe(405);
  });
});
