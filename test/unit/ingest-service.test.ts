// IngestService handlers in memory (test/support/in-memory.ts): per-event
// outcomes, summaries and status codes of Append and Ingest.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { EventStatus } from "../../gen/auditlog/v1/ingest_pb.js";
import { inMemoryService } from "../support/in-memory.ts";
import { RateLimiter } from "../../src/services/rate-limiter.ts";
import { minimalEvent } from "./fixtures.ts";

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  const err = await p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );
  return { code: err.code, message: err.rawMessage };
}

async function setUp() {
  const svc = inMemoryService();
  const { ingest, query } = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST", "SCOPE_QUERY"]));
  return { svc, ingest, query };
}

describe("Append", () => {
  it("accepts valid events, rejects invalid ones by index with field and reason, and reports the position", async () => {
    const { svc, ingest } = await setUp();
    const res = await ingest.append({
      events: [minimalEvent({ id: "a-1" }), minimalEvent({ id: "a-2", action: "Not An Action" }), minimalEvent({ id: "a-3" })],
    });
    const s = res.summary!;
    expect({ accepted: s.accepted, rejected: s.rejected, duplicates: s.duplicates, conflicts: s.conflicts }).toEqual({
      accepted: 2n,
      rejected: 1n,
      duplicates: 0n,
      conflicts: 0n,
    });
    expect(s.position).toBe(2n);
    expect(s.results).toHaveLength(1); // accepted events carry no result entry
    expect(s.results[0]).toMatchObject({ index: 1, id: "a-2", status: EventStatus.REJECTED, field: "action" });
    expect(s.results[0]!.reason).toMatch(/^action: /);
    expect(svc.events.chain("acme").map((r) => r.id)).toEqual(["a-1", "a-3"]);
  });

  it("answers a resend DUPLICATE and an id reused with other content CONFLICT, with the stored sequence", async () => {
    const { svc, ingest } = await setUp();
    await ingest.append({ events: [minimalEvent({ id: "d-1" }), minimalEvent({ id: "d-2" })] });
    const res = await ingest.append({
      events: [minimalEvent({ id: "d-1" }), minimalEvent({ id: "d-2", action: "other.action" }), minimalEvent({ id: "d-3" })],
    });
    const s = res.summary!;
    expect({ accepted: s.accepted, duplicates: s.duplicates, conflicts: s.conflicts }).toEqual({
      accepted: 1n,
      duplicates: 1n,
      conflicts: 1n,
    });
    expect(s.results.map((r) => [r.index, r.id, r.status, r.sequence])).toEqual([
      [0, "d-1", EventStatus.DUPLICATE, 1n],
      [1, "d-2", EventStatus.CONFLICT, 2n],
    ]);
    expect(s.position).toBe(3n);
    expect(svc.events.chain("acme").map((r) => r.action)).toEqual(["customer.created", "customer.created", "customer.created"]);
  });

  it("fails INVALID_ARGUMENT naming every event when none is valid, and stores nothing", async () => {
    const { svc, ingest } = await setUp();
    const err = await codeOf(ingest.append({ events: [minimalEvent({ id: "x-1", action: "" }), minimalEvent({ id: "x-2", actor: {} })] }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toMatch(/events\[0\] \(id "x-1"\): action: .*; events\[1\] \(id "x-2"\): actor\.id: /);
    expect(svc.events.batches).toEqual([]);
  });

  it("answers a resend of stored events OK with DUPLICATE results (a retry must succeed), but all CONFLICT is ALREADY_EXISTS", async () => {
    const { ingest } = await setUp();
    await ingest.append({ events: [minimalEvent({ id: "r-1" })] });
    const again = await ingest.append({ events: [minimalEvent({ id: "r-1" })] });
    expect(again.summary!.results.map((r) => r.status)).toEqual([EventStatus.DUPLICATE]);
    const err = await codeOf(ingest.append({ events: [minimalEvent({ id: "r-1", message: "changed" })] }));
    expect(err.code).toBe(Code.AlreadyExists);
    expect(err.message).toBe('events[0] (id "r-1"): id already used by an event with different content; the stored event is unchanged');
  });

  it("refuses an empty message with INVALID_ARGUMENT", async () => {
    const { ingest } = await setUp();
    expect((await codeOf(ingest.append({ events: [] }))).code).toBe(Code.InvalidArgument);
  });

  it("turns a failed write into UNAVAILABLE (retry with the same ids) and then accepts the retry", async () => {
    const { svc, ingest } = await setUp();
    svc.events.failNextWrite = new Error("could not serialize access");
    const err = await codeOf(ingest.append({ events: [minimalEvent({ id: "u-1" })] }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.message).toMatch(/retry with the same event ids/);
    const res = await ingest.append({ events: [minimalEvent({ id: "u-1" })] });
    expect(res.summary!.accepted).toBe(1n);
  });

  it("keeps tenants apart: the same id in two tenants is two events", async () => {
    const svc = inMemoryService();
    const acme = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"])).ingest;
    const globex = svc.clients(await svc.tenantKey("globex", ["SCOPE_INGEST"])).ingest;
    expect((await acme.append({ events: [minimalEvent({ id: "same" })] })).summary!.accepted).toBe(1n);
    expect((await globex.append({ events: [minimalEvent({ id: "same" })] })).summary!.accepted).toBe(1n);
    expect(svc.events.chain("globex").map((r) => [r.tenantId, r.sequence])).toEqual([["globex", 1n]]);
  });
});

describe("Ingest (client stream)", () => {
  it("numbers results across messages in the order sent and answers once for the whole stream", async () => {
    const { ingest } = await setUp();
    const res = await ingest.ingest(
      (async function* () {
        yield { events: [minimalEvent({ id: "s-1" }), minimalEvent({ id: "s-2" })] };
        yield { events: [minimalEvent({ id: "s-1" }), minimalEvent({ id: "s-3", occurredAt: undefined })] };
        yield { events: [minimalEvent({ id: "s-4" })] };
      })(),
    );
    const s = res.summary!;
    expect({ accepted: s.accepted, duplicates: s.duplicates, rejected: s.rejected }).toEqual({
      accepted: 3n,
      duplicates: 1n,
      rejected: 1n,
    });
    expect(s.results.map((r) => [r.index, r.id, r.status])).toEqual([
      [2, "s-1", EventStatus.DUPLICATE],
      [3, "s-3", EventStatus.REJECTED],
    ]);
    expect(s.results[1]!.field).toBe("occurred_at");
    expect(s.position).toBe(3n);
  });

  it("fails the stream INVALID_ARGUMENT on a message with more than 1,000 events, after the earlier messages' commits", async () => {
    const { svc, ingest } = await setUp();
    const err = await codeOf(
      ingest.ingest(
        (async function* () {
          yield { events: [minimalEvent({ id: "ok-1" })] };
          yield { events: Array.from({ length: 1001 }, (_, i) => minimalEvent({ id: `big-${i}` })) };
        })(),
      ),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toMatch(/1001 events in one message/);
    expect(svc.events.chain("acme").map((r) => r.id)).toEqual(["ok-1"]);
  });
});

describe("who may ingest", () => {
  it("UNAUTHENTICATED without a key or with an unknown one", async () => {
    const svc = inMemoryService();
    expect((await codeOf(svc.clients().ingest.append({ events: [minimalEvent()] }))).code).toBe(Code.Unauthenticated);
    const forged = svc.clients("alk_0000000000000000_nope").ingest;
    expect((await codeOf(forged.append({ events: [minimalEvent()] }))).code).toBe(Code.Unauthenticated);
  });

  it("PERMISSION_DENIED for a key without the ingest scope and for the operator key", async () => {
    const svc = inMemoryService();
    const queryOnly = svc.clients(await svc.tenantKey("acme", ["SCOPE_QUERY"])).ingest;
    expect((await codeOf(queryOnly.append({ events: [minimalEvent()] }))).code).toBe(Code.PermissionDenied);
    const operator = svc.clients(svc.operatorKey).ingest;
    expect((await codeOf(operator.append({ events: [minimalEvent()] }))).code).toBe(Code.PermissionDenied);
    expect(svc.events.batches).toEqual([]);
  });
});

describe("a tenant that does not exist (any more)", () => {
  it("is FAILED_PRECONDITION naming the tenant, not 'storage is unavailable; retry', on Append and on Ingest", async () => {
    const { svc, ingest } = await setUp();
    svc.tenants.rows.delete("acme"); // the key outlived its tenant: no chain head to write to
    for (const call of [
      () => ingest.append({ events: [minimalEvent({ id: "g-1" })] }),
      () =>
        ingest.ingest(
          (async function* () {
            yield { events: [minimalEvent({ id: "g-2" })] };
          })(),
        ),
    ]) {
      const err = await codeOf(call());
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(err.message).toMatch(/^tenant "acme" does not exist/);
      expect(err.message).not.toMatch(/storage is unavailable/);
    }
    expect(svc.events.chain("acme")).toEqual([]);
  });

  it("fails only its own callers FAILED_PRECONDITION; callers of other tenants in the same batch are told to retry, and the retry succeeds", async () => {
    const svc = inMemoryService();
    const acme = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"])).ingest;
    const globex = svc.clients(await svc.tenantKey("globex", ["SCOPE_INGEST"])).ingest;
    const initech = svc.clients(await svc.tenantKey("initech", ["SCOPE_INGEST"])).ingest;
    svc.tenants.rows.delete("acme");
    let release!: () => void;
    svc.events.holdWrites = new Promise((r) => (release = r));
    const first = initech.append({ events: [minimalEvent({ id: "i-1" })] });
    while (svc.events.batches.length === 0) await new Promise((r) => setImmediate(r));
    const gone = codeOf(acme.append({ events: [minimalEvent({ id: "a-1" })] }));
    const other = codeOf(globex.append({ events: [minimalEvent({ id: "b-1" })] }));
    while (svc.committer.pendingEvents < 3) await new Promise((r) => setImmediate(r));
    svc.events.holdWrites = null;
    release();
    expect((await first).summary!.accepted).toBe(1n);
    expect((await gone).code).toBe(Code.FailedPrecondition);
    const retry = await other;
    expect(svc.events.batches[1]!.map((i) => i.tenantId).sort()).toEqual(["acme", "globex"]);
    expect(retry.code).toBe(Code.Unavailable);
    expect(retry.message).toMatch(/retry with the same event ids/);
    expect(retry.message).not.toMatch(/acme/);
    expect((await globex.append({ events: [minimalEvent({ id: "b-1" })] })).summary!.accepted).toBe(1n);
  });
});

describe("per-tenant ingest rate", () => {
  async function limited(ratePerSecond: number, burst: number) {
    const clock = { t: 0 };
    const ingestLimiter = new RateLimiter({
      work: "ingest",
      unit: "events",
      perTenant: { ratePerSecond, burst },
      perKey: { ratePerSecond: 0, burst: 1 },
      now: () => clock.t,
    });
    const svc = inMemoryService({ ingestLimiter });
    const noisy = svc.clients(await svc.tenantKey("noisy", ["SCOPE_INGEST"])).ingest;
    const quiet = svc.clients(await svc.tenantKey("quiet", ["SCOPE_INGEST"])).ingest;
    const batch = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => minimalEvent({ id: `${prefix}-${i}` }));
    return { svc, clock, noisy, quiet, batch };
  }

  it("answers Append over the rate RESOURCE_EXHAUSTED with the retry delay, stores nothing of it, and leaves another tenant alone", async () => {
    const { svc, clock, noisy, quiet, batch } = await limited(1000, 1000);
    expect((await noisy.append({ events: batch("a", 1000) })).summary!.accepted).toBe(1000n);
    const err = await codeOf(noisy.append({ events: batch("b", 400) }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/over its ingest rate \(1000 events\/s per server.*retry after 0\.4 s/);
    expect((await quiet.append({ events: batch("q", 10) })).summary!.accepted).toBe(10n);
    clock.t = 400;
    expect((await noisy.append({ events: batch("b", 400) })).summary!.accepted).toBe(400n);
    expect(svc.events.chain("noisy")).toHaveLength(1400);
  });

  it("answers an Append larger than the burst that it can never fit", async () => {
    const { noisy, batch } = await limited(1000, 500);
    const err = await codeOf(noisy.append({ events: batch("a", 501) }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/501 events in one message exceed .* never be accepted at once; send at most 500 per message/);
  });

  it("fails an Ingest stream whose message cannot get its tokens RESOURCE_EXHAUSTED, keeping what was committed", async () => {
    // The clock never moves: the second message would wait 100 s, beyond the bound.
    const { svc, noisy, batch } = await limited(10, 1000);
    const err = await codeOf(
      noisy.ingest(
        (async function* () {
          yield { events: batch("s1", 1000) };
          yield { events: batch("s2", 1000) };
        })(),
      ),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/retry after 100\.0 s/);
    expect(svc.events.chain("noisy")).toHaveLength(1000);
  });
});

describe("large batches in chunks", () => {
  it("lets another request run while 1,000 events are validated, with per-event results in order", async () => {
    const { ingest } = await setUp();
    const events = Array.from({ length: 1000 }, (_, i) =>
      minimalEvent({ id: `c-${i}`, ...(i % 250 === 7 ? { action: "Bad Action" } : {}) }),
    );
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 0);
    const started = performance.now();
    const res = await ingest.append({ events }).finally(() => clearInterval(ticker));
    expect(res.summary!.accepted).toBe(996n);
    expect(res.summary!.results.map((r) => r.index)).toEqual([7, 257, 507, 757]);
    // Timers run between chunks; validated in one go, none would have.
    if (performance.now() - started > 20) expect(ticks).toBeGreaterThan(1);
  });
});
