// tailStream and TailFeed over an in-memory list of committed records (the
// PostgreSQL side is covered by test/integration/tail-events.test.ts).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { describe, expect, it } from "vitest";
import { TailEventsRequestSchema, type TailEventsResponse, TailEventsResponseSchema } from "../../gen/auditlog/v1/query_pb.js";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { createLogger } from "../../src/platform/log.ts";
import { TailFeed } from "../../src/services/tail/tail-feed.ts";
import { isBinaryCodec, tailStream } from "../../src/services/tail/tail-stream.ts";
import { chainRecords, minimalEvent } from "./fixtures.ts";

function setup(n: number) {
  const committed: StoredRecord[] = [];
  const all = chainRecords(Array.from({ length: n }, (_, i) => minimalEvent({ id: `e${i + 1}`, actor: { id: i % 2 ? "alice" : "bob" } })));
  const reader = {
    head: async () => BigInt(committed.length),
    readAfter: async (_t: string, after: bigint, limit: number) => committed.slice(Number(after), Number(after) + limit),
  };
  const feed = new TailFeed(reader, createLogger({ level: "error" }), { batchSize: 3, bufferLimit: 100, pollMs: 60_000 });
  const commit = (k: number) => {
    const from = committed.length;
    committed.push(...all.slice(from, from + k));
    feed.onCommit(new Map([["tenant-a", BigInt(committed.length)]]));
  };
  const deps = { validator: createValidator(), reader, feed, heartbeatMs: 60_000 };
  return { commit, deps, feed };
}

async function take(it: AsyncGenerator<TailEventsResponse>, k: number): Promise<string[]> {
  const out: string[] = [];
  while (out.length < k) {
    const r = await it.next();
    if (r.done) break;
    const v = r.value.item;
    if (v.case === "event") out.push(`${v.value.sequence}:${v.value.event!.id}`);
    else if (v.case === "batch") out.push(v.value.events.map((e) => `${e.sequence}:${e.event!.id}`).join(","));
    else out.push(`hb:${v.value!.position}`);
  }
  return out;
}

describe("tailStream", () => {
  it("catches up from a position in pages of its own, then follows the feed", async () => {
    const { commit, deps, feed } = setup(12);
    commit(7);
    const ac = new AbortController();
    const s = tailStream(
      deps,
      { tenantId: "tenant-a", actorId: null, binary: false },
      create(TailEventsRequestSchema, { afterPosition: 2n }),
      ac.signal,
    );
    expect(await take(s, 6)).toEqual(["3:e3", "4:e4", "5:e5", "6:e6", "7:e7", "hb:7"]);
    expect(feed.registry.count("tenant-a")).toBe(1);
    commit(3);
    expect(await take(s, 3)).toEqual(["8:e8", "9:e9", "10:e10"]);
    await s.return(undefined);
    expect(feed.registry.count("tenant-a")).toBe(0);
  });

  it("starts at the head with a heartbeat, and shows a User only their own events", async () => {
    const { commit, deps } = setup(10);
    commit(4);
    const ac = new AbortController();
    const s = tailStream(deps, { tenantId: "tenant-a", actorId: "alice", binary: false }, create(TailEventsRequestSchema), ac.signal);
    expect(await take(s, 1)).toEqual(["hb:4"]);
    commit(6);
    // alice is the actor of the even-numbered events.
    expect(await take(s, 3)).toEqual(["6:e6", "8:e8", "10:e10"]);
    ac.abort();
    await expect(s.next()).rejects.toThrow();
  });

  it("encodes an event once for every binary subscriber, as the oneof's event case", async () => {
    const { commit, deps } = setup(3);
    const ac = new AbortController();
    const caller = { tenantId: "tenant-a", actorId: null, binary: true };
    const a = tailStream(deps, caller, create(TailEventsRequestSchema), ac.signal);
    const b = tailStream(deps, caller, create(TailEventsRequestSchema), ac.signal);
    await a.next();
    await b.next();
    commit(1);
    const [ra, rb] = [(await a.next()).value!, (await b.next()).value!];
    expect(ra).toBe(rb);
    const decoded = fromBinary(TailEventsResponseSchema, toBinary(TailEventsResponseSchema, ra));
    expect(decoded.item).toMatchObject({ case: "event", value: { sequence: 1n, event: { id: "e1" } } });
    ac.abort();
  });
});

/** Until the feed has handed every committed event to the tenant's subscribers (it reads 3 at a time). */
async function fed(feed: TailFeed, head: bigint): Promise<void> {
  while (feed.registry.lowestPosition("tenant-a") !== head) await new Promise((r) => setImmediate(r));
}

describe("tailStream with max_batch", () => {
  it("sends what is ready in batches of at most max_batch, in order, during catch-up and from the feed", async () => {
    const { commit, deps, feed } = setup(20);
    commit(7);
    const ac = new AbortController();
    const caller = { tenantId: "tenant-a", actorId: null, binary: false };
    const s = tailStream(deps, caller, create(TailEventsRequestSchema, { afterPosition: 1n, maxBatch: 2 }), ac.signal);
    // Catch-up pages of 3 aligned on sequences (after 0, 3, 6: the feed's batchSize), each cut into batches of 2.
    expect(await take(s, 5)).toEqual(["2:e2,3:e3", "4:e4,5:e5", "6:e6", "7:e7", "hb:7"]);
    commit(5);
    await fed(feed, 12n);
    expect(await take(s, 3)).toEqual(["8:e8,9:e9", "10:e10,11:e11", "12:e12"]);
    ac.abort();
  });

  it("encodes a batch for binary codecs as the oneof's batch case, from each event's bytes", async () => {
    const { commit, deps, feed } = setup(5);
    const ac = new AbortController();
    const caller = { tenantId: "tenant-a", actorId: null, binary: true };
    const json = tailStream(deps, { ...caller, binary: false }, create(TailEventsRequestSchema, { maxBatch: 10 }), ac.signal);
    const bin = tailStream(deps, caller, create(TailEventsRequestSchema, { maxBatch: 10 }), ac.signal);
    await json.next();
    await bin.next();
    commit(4);
    await fed(feed, 4n);
    const [rj, rb] = [(await json.next()).value!, (await bin.next()).value!];
    const decoded = fromBinary(TailEventsResponseSchema, toBinary(TailEventsResponseSchema, rb));
    expect(decoded.item.case).toBe("batch");
    expect(decoded).toEqual(fromBinary(TailEventsResponseSchema, toBinary(TailEventsResponseSchema, rj)));
    expect(decoded.item.case === "batch" && decoded.item.value.events.map((e) => e.event!.id)).toEqual(["e1", "e2", "e3", "e4"]);
    ac.abort();
  });
});

describe("tail batches shared", () => {
  it("builds a batch once for binary subscribers in step, and not for one that takes other events", async () => {
    const { commit, deps, feed } = setup(6);
    const ac = new AbortController();
    const caller = { tenantId: "tenant-a", actorId: null, binary: true };
    const req = create(TailEventsRequestSchema, { maxBatch: 10 });
    const a = tailStream(deps, caller, req, ac.signal);
    const b = tailStream(deps, caller, req, ac.signal);
    const bob = tailStream(deps, { ...caller, actorId: "bob" }, req, ac.signal);
    for (const s of [a, b, bob]) await s.next();
    commit(3);
    await fed(feed, 3n);
    const [ra, rb, rbob] = [(await a.next()).value!, (await b.next()).value!, (await bob.next()).value!];
    expect(ra).toBe(rb);
    expect(rbob).not.toBe(ra);
    const ids = (r: TailEventsResponse) => {
      const d = fromBinary(TailEventsResponseSchema, toBinary(TailEventsResponseSchema, r));
      return d.item.case === "batch" ? d.item.value.events.map((e) => e.event!.id) : [];
    };
    expect(ids(ra)).toEqual(["e1", "e2", "e3"]);
    expect(ids(rbob)).toEqual(["e1", "e3"]);
    ac.abort();
  });
});

describe("isBinaryCodec", () => {
  it("tells the binary codecs from JSON", () => {
    for (const t of ["application/grpc", "application/grpc+proto", "application/grpc-web+proto", "application/connect+proto"]) {
      expect(isBinaryCodec(t)).toBe(true);
    }
    for (const t of ["application/grpc+json", "application/grpc-web+json", "application/connect+json", "application/json", null]) {
      expect(isBinaryCodec(t)).toBe(false);
    }
  });
});
