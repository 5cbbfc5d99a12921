// The limits interceptor and the ingest rate through the real handlers
// (in memory, createRouterTransport): read rates per key and per tenant
// answered RESOURCE_EXHAUSTED with the delay, ingest rate per key, the cap
// on open streams per key, and Ingest and ExportEvents ended by their idle
// and duration bounds with DEADLINE_EXCEEDED.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { IngestRequest } from "../../gen/auditlog/v1/ingest_pb.js";
import { connectErrorOf } from "../../src/services/errors.ts";
import type { Limits } from "../../src/services/limits-interceptor.ts";
import { type RateLimit, RateLimitError, RateLimiter } from "../../src/services/rate-limiter.ts";
import { StreamLimiter } from "../../src/services/stream-limits.ts";
import { inMemoryService } from "../support/in-memory.ts";
import { minimalEvent } from "./fixtures.ts";

const NONE: RateLimit = { ratePerSecond: 0, burst: 1 };

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

async function drain(stream: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of stream) n++;
  return n;
}

function readRates(perTenant: RateLimit, perKey: RateLimit) {
  const clock = { t: 0 };
  const reads = new RateLimiter({ work: "read", unit: "requests", perTenant, perKey, now: () => clock.t });
  return { clock, reads };
}

/** An Ingest request stream: one message, then nothing (neither another message nor its end) until `end` is called. */
function stalledStream(id: string) {
  let end!: () => void;
  const ended = new Promise<void>((resolve) => {
    end = resolve;
  });
  async function* messages(): AsyncIterable<IngestRequest> {
    yield { events: [minimalEvent({ id })] } as IngestRequest;
    await ended;
  }
  return { messages: messages(), end };
}

describe("read rate", () => {
  it("refuses a key over its rate RESOURCE_EXHAUSTED with the delay, while another key of the tenant goes on", async () => {
    const { clock, reads } = readRates(NONE, { ratePerSecond: 2, burst: 2 });
    const svc = inMemoryService({ limits: { reads } });
    const a = svc.clients(await svc.tenantKey("acme", ["SCOPE_QUERY"])).query;
    const b = svc.clients(await svc.tenantKey("acme", ["SCOPE_QUERY"])).query;
    await a.getIndexStatus({});
    await a.searchEvents({});
    const err = await failure(a.getEvent({ id: "x" }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/this API key is over its read rate \(2 requests\/s per server, bursts of up to 2\); retry after 0\.5 s/);
    await b.getIndexStatus({});
    clock.t = 500;
    await a.getIndexStatus({});
  });

  it("refuses a tenant over its rate whichever key it uses, and leaves other tenants alone", async () => {
    const { reads } = readRates({ ratePerSecond: 1, burst: 3 }, NONE);
    const svc = inMemoryService({ limits: { reads } });
    const keys = [await svc.tenantKey("acme", ["SCOPE_QUERY"]), await svc.tenantKey("acme", ["SCOPE_QUERY"])];
    const other = svc.clients(await svc.tenantKey("globex", ["SCOPE_QUERY"])).query;
    for (const k of [0, 1, 0]) await svc.clients(keys[k]).query.getIndexStatus({});
    const err = await failure(svc.clients(keys[1]).query.verifyChain({}));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/this tenant is over its read rate .*retry after 1\.0 s/);
    await other.getIndexStatus({});
  });

  it("counts an ExportEvents stream as one request", async () => {
    const { reads } = readRates(NONE, { ratePerSecond: 1, burst: 1 });
    const svc = inMemoryService({ limits: { reads } });
    const q = svc.clients(await svc.tenantKey("acme", ["SCOPE_QUERY"])).query;
    await drain(q.exportEvents({}));
    expect((await failure(drain(q.exportEvents({})))).code).toBe(Code.ResourceExhausted);
  });

  it("carries the delay on the error for the mapping", () => {
    const err = new RateLimitError("read", "requests", "key", 1, { ratePerSecond: 2, burst: 2 }, 500);
    const mapped = connectErrorOf(err)!;
    expect(mapped.code).toBe(Code.ResourceExhausted);
    expect((mapped.cause as RateLimitError).retryAfterMs).toBe(500);
  });
});

describe("ingest rate per key", () => {
  it("refuses one key over its rate while another key of the same tenant goes on", async () => {
    const clock = { t: 0 };
    const ingestLimiter = new RateLimiter({
      work: "ingest",
      unit: "events",
      perTenant: NONE,
      perKey: { ratePerSecond: 100, burst: 100 },
      now: () => clock.t,
    });
    const svc = inMemoryService({ ingestLimiter });
    const a = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"])).ingest;
    const b = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"])).ingest;
    const batch = (p: string, n: number) => Array.from({ length: n }, (_, i) => minimalEvent({ id: `${p}-${i}` }));
    await a.append({ events: batch("a", 100) });
    const err = await failure(a.append({ events: batch("a2", 50) }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/this API key is over its ingest rate \(100 events\/s per server.*retry after 0\.5 s/);
    expect((await b.append({ events: batch("b", 100) })).summary!.accepted).toBe(100n);
    expect(svc.events.chain("acme")).toHaveLength(200);
  });
});

describe("open streams per key", () => {
  it("refuses a key's stream beyond the cap RESOURCE_EXHAUSTED, counts Ingest and ExportEvents, and frees the slot when one ends", async () => {
    const limits: Limits = { streams: new StreamLimiter(2) };
    const svc = inMemoryService({ limits });
    const key = await svc.tenantKey("acme", ["SCOPE_INGEST", "SCOPE_QUERY"]);
    const c = svc.clients(key);
    const other = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"]));
    let release!: () => void;
    svc.events.holdExports = new Promise((r) => {
      release = r;
    });
    await c.ingest.append({ events: [minimalEvent({ id: "e-0" })] });
    const first = stalledStream("s-1");
    const ingest = c.ingest.ingest(first.messages);
    const exporting = drain(c.query.exportEvents({}));
    await new Promise((r) => setTimeout(r, 20));
    const err = await failure(c.ingest.ingest(stalledStream("s-2").messages));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/already has 2 streams \(Ingest, ExportEvents\) open on this server/);
    // Unary calls and other keys are not counted.
    await c.ingest.append({ events: [minimalEvent({ id: "e-1" })] });
    const elsewhere = stalledStream("o-1");
    const otherIngest = other.ingest.ingest(elsewhere.messages);
    first.end();
    expect((await ingest).summary!.accepted).toBe(1n);
    const again = stalledStream("s-3");
    const third = c.ingest.ingest(again.messages);
    again.end();
    elsewhere.end();
    expect((await third).summary!.accepted).toBe(1n);
    await otherIngest;
    release();
    expect(await exporting).toBe(1);
  });
});

describe("stream bounds", () => {
  it("ends an Ingest stream that sends no message for the idle time DEADLINE_EXCEEDED, keeping what it committed, and frees its slot", async () => {
    const streams = new StreamLimiter(1);
    const svc = inMemoryService({ limits: { streams, streamBounds: { idleMs: 50, maxDurationMs: 0 } } });
    const c = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"]));
    const err = await failure(c.ingest.ingest(stalledStream("i-1").messages));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.message).toMatch(/this Ingest stream sent no message for 0\.05 s/);
    expect(svc.events.chain("acme").map((r) => r.id)).toEqual(["i-1"]);
    const next = stalledStream("i-2");
    const ok = c.ingest.ingest(next.messages);
    next.end();
    expect((await ok).summary!.accepted).toBe(1n);
  });

  it("ends an ExportEvents stream at its longest duration DEADLINE_EXCEEDED, stopping the export", async () => {
    const streams = new StreamLimiter(1);
    const svc = inMemoryService({ limits: { streams, streamBounds: { idleMs: 0, maxDurationMs: 100 } } });
    const c = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST", "SCOPE_QUERY"]));
    await c.ingest.append({ events: [minimalEvent({ id: "x-1" }), minimalEvent({ id: "x-2" })] });
    svc.events.holdExports = new Promise(() => {}); // a read that never finishes by itself
    const err = await failure(drain(c.query.exportEvents({})));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.message).toMatch(/this ExportEvents stream reached its longest allowed duration \(0\.1 s per stream\)/);
    expect(streams.active("key:" + svc.keys.rows.values().next().value!.id)).toBe(0);
  });

  it("ends an Ingest stream at its longest duration, even while messages keep coming", async () => {
    const svc = inMemoryService({ limits: { streamBounds: { idleMs: 0, maxDurationMs: 100 } } });
    const c = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"]));
    async function* steady(): AsyncIterable<IngestRequest> {
      for (let i = 0; ; i++) {
        yield { events: [minimalEvent({ id: `d-${i}` })] } as IngestRequest;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    const err = await failure(c.ingest.ingest(steady()));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.message).toMatch(/longest allowed duration/);
  });
});
