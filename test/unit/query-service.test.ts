// QueryService handlers in memory (test/support/in-memory.ts): GetEvent,
// SearchEvents paging and page tokens, VerifyChain.
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeEach, describe, expect, it } from "vitest";
import { SortOrder } from "../../gen/auditlog/v1/query_pb.js";
import { inMemoryService, type InMemoryService, type ServiceClients } from "../support/in-memory.ts";
import { minimalEvent } from "./fixtures.ts";

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );
}

const BASE = 1_714_979_289n;

let svc: InMemoryService;
let acme: ServiceClients;
let globex: ServiceClients;

beforeEach(async () => {
  svc = inMemoryService();
  acme = svc.clients(await svc.tenantKey("acme"));
  globex = svc.clients(await svc.tenantKey("globex"));
  // 25 events a second apart; every 5th is a login.
  await acme.ingest.append({
    events: Array.from({ length: 25 }, (_, i) =>
      minimalEvent({ id: `e-${i}`, occurredAt: { seconds: BASE + BigInt(i) }, action: i % 5 === 0 ? "user.login" : "customer.updated" }),
    ),
  });
});

describe("GetEvent", () => {
  it("returns the stored event with what the server added", async () => {
    const { event } = await acme.query.getEvent({ id: "e-3" });
    expect(event).toMatchObject({ sequence: 4n, tenantId: "acme", event: { id: "e-3", action: "customer.updated" } });
    expect(event!.hash).toBe(svc.events.chain("acme")[3]!.hash);
  });

  it("NOT_FOUND for an unknown id and for another tenant's event", async () => {
    const missing = await failure(acme.query.getEvent({ id: "nope" }));
    expect(missing.code).toBe(Code.NotFound);
    expect(missing.rawMessage).toBe('no event with id "nope"');
    expect((await failure(globex.query.getEvent({ id: "e-3" }))).code).toBe(Code.NotFound);
  });

  it("INVALID_ARGUMENT for an empty id (the contract's rule)", async () => {
    const err = await failure(acme.query.getEvent({ id: "" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^id: /);
  });
});

describe("SearchEvents", () => {
  it("pages through every match once, in order, and ends with an empty token", async () => {
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const res = await acme.query.searchEvents({ order: SortOrder.ASCENDING, pageSize: 7, pageToken, includeTotal: true });
      expect(res.total).toBe(25n);
      expect(res.events.length).toBeLessThanOrEqual(7);
      seen.push(...res.events.map((e) => e.event!.id));
      pageToken = res.nextPageToken;
      pages++;
    } while (pageToken);
    expect(pages).toBe(4);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `e-${i}`));
  });

  it("newest first by default, and a filter narrows the pages", async () => {
    const first = await acme.query.searchEvents({ filter: { actions: ["user.login"] }, pageSize: 2 });
    expect(first.events.map((e) => e.event!.id)).toEqual(["e-20", "e-15"]);
    const second = await acme.query.searchEvents({ filter: { actions: ["user.login"] }, pageSize: 2, pageToken: first.nextPageToken });
    expect(second.events.map((e) => e.event!.id)).toEqual(["e-10", "e-5"]);
    const last = await acme.query.searchEvents({ filter: { actions: ["user.login"] }, pageSize: 2, pageToken: second.nextPageToken });
    expect(last.events.map((e) => e.event!.id)).toEqual(["e-0"]);
    expect(last.nextPageToken).toBe("");
  });

  it("refuses a token with another filter, another order, from another tenant, or garbled: INVALID_ARGUMENT on page_token", async () => {
    const { nextPageToken } = await acme.query.searchEvents({ pageSize: 5 });
    expect(nextPageToken).not.toBe("");
    const refusals = [
      acme.query.searchEvents({ pageSize: 5, pageToken: nextPageToken, filter: { actions: ["user.login"] } }),
      acme.query.searchEvents({ pageSize: 5, pageToken: nextPageToken, order: SortOrder.ASCENDING }),
      globex.query.searchEvents({ pageSize: 5, pageToken: nextPageToken }),
      acme.query.searchEvents({ pageSize: 5, pageToken: "not-a-token" }),
      acme.query.searchEvents({ pageSize: 5, pageToken: nextPageToken.slice(0, -2) }),
    ];
    for (const p of refusals) {
      const err = await failure(p);
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/^page_token: /);
    }
    // The token still works where it belongs.
    expect((await acme.query.searchEvents({ pageSize: 5, pageToken: nextPageToken })).events).toHaveLength(5);
  });

  it("INVALID_ARGUMENT for a page size over 1,000", async () => {
    const err = await failure(acme.query.searchEvents({ pageSize: 1001 }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^page_size: /);
  });

  it("sees only the caller's tenant", async () => {
    expect((await globex.query.searchEvents({ includeTotal: true })).total).toBe(0n);
  });
});

describe("VerifyChain", () => {
  it("checks the whole chain and returns the head hash", async () => {
    const res = await acme.query.verifyChain({});
    expect(res).toMatchObject({ ok: true, checked: 25n, fromSequence: 1n, toSequence: 25n });
    expect(res.headHash).toBe(svc.events.chain("acme").at(-1)!.hash);
  });

  it("checks a range", async () => {
    const res = await acme.query.verifyChain({ fromSequence: 10n, toSequence: 12n });
    expect(res).toMatchObject({ ok: true, checked: 3n, fromSequence: 10n, toSequence: 12n });
    expect(res.headHash).toBe(svc.events.chain("acme")[11]!.hash);
  });

  it("reports the first altered event", async () => {
    svc.events.chain("acme")[6]!.message = "rewritten";
    const res = await acme.query.verifyChain({});
    expect(res.ok).toBe(false);
    expect(res.broken).toMatchObject({ sequence: 7n, eventId: "e-6" });
    expect(res.broken!.reason).toMatch(/^content altered/);
    expect(res.headHash).toBe("");
  });

  it("reports a missing event", async () => {
    svc.events.chain("acme").splice(9, 1);
    const res = await acme.query.verifyChain({});
    expect(res.ok).toBe(false);
    expect(res.broken).toMatchObject({ sequence: 10n, eventId: "" });
    expect(res.broken!.reason).toMatch(/missing/);
  });

  it("INVALID_ARGUMENT when to_sequence is below from_sequence", async () => {
    const err = await failure(acme.query.verifyChain({ fromSequence: 5n, toSequence: 4n }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("to_sequence: must not be below from_sequence");
  });
});

describe("who may query", () => {
  it("PERMISSION_DENIED for an ingest-only key and for the operator; UNAUTHENTICATED without a key", async () => {
    const ingestOnly = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"])).query;
    expect((await failure(ingestOnly.getEvent({ id: "e-1" }))).code).toBe(Code.PermissionDenied);
    expect((await failure(svc.clients(svc.operatorKey).query.getEvent({ id: "e-1" }))).code).toBe(Code.PermissionDenied);
    expect((await failure(svc.clients().query.verifyChain({}))).code).toBe(Code.Unauthenticated);
  });
});
