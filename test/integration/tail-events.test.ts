// QueryService.TailEvents against the real service and PostgreSQL: two
// in-process replicas on one database, each with its own commit listener.
import { randomBytes } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { QueryService, type TailEventsRequestSchema, type TailEventsResponse } from "../../gen/auditlog/v1/query_pb.js";
import { type App, startApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { recordFromEvent } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { createLogger } from "../../src/platform/log.ts";
import { writeBatch } from "../../src/store/event-writer.ts";
import { committedHeadSystem } from "../../src/store/index-progress.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";
import { bearerInterceptor, forEachTransport, serviceClients, TRANSPORTS } from "../support/transports.ts";

// Above the largest commit of these tests (200 events), as the default (1000) is above a read batch (500).
const BUFFER = 500;
let a: TestService;
let b: App;
let t1: TenantKeys;
let t2: TenantKeys;

beforeAll(async () => {
  const env = { AUDITLOG_TAIL_BUFFER_EVENTS: String(BUFFER) };
  a = await startTestService(env);
  const config = loadConfig({ PORT: "0", AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY, LOG_LEVEL: "warn", ...env });
  b = await startApp({ ...config, databaseUrl: a.databaseUrl }, createLogger({ level: "warn" }));
  const run = randomBytes(3).toString("hex");
  t1 = await createTenantWithKeys(a.url, `tail-a-${run}`);
  t2 = await createTenantWithKeys(a.url, `tail-b-${run}`);
});

afterAll(async () => {
  await b?.close();
  await a?.stop();
});

const grpc = TRANSPORTS[0]!;
const clients = (url: string, key: string, t = grpc) => serviceClients(t.transport(url, [bearerInterceptor(key)]));

type Ev = { id: string; action?: string; actor?: string; message?: string };
const event = (e: Ev) => ({
  id: e.id,
  occurredAt: { seconds: 1_714_979_289n },
  action: e.action ?? "tail.test",
  actor: { id: e.actor ?? "user-1" },
  message: e.message ?? "",
});

async function append(url: string, key: string, evs: Ev[]): Promise<bigint> {
  const r = await clients(url, key).ingest.append({ events: evs.map(event) });
  expect(r.summary!.rejected).toBe(0n);
  return r.summary!.position;
}

/** A tail that collects into `items` until stopped; `done` settles when the stream ends. */
function openTail(query: Client<typeof QueryService>, req: MessageInitShape<typeof TailEventsRequestSchema>) {
  const ac = new AbortController();
  const items: TailEventsResponse[] = [];
  const waiters: (() => void)[] = [];
  const done = (async () => {
    try {
      for await (const item of query.tailEvents(req, { signal: ac.signal })) {
        items.push(item);
        for (const w of waiters.splice(0)) w();
      }
      return null;
    } catch (err) {
      if (ac.signal.aborted) return null;
      return ConnectError.from(err);
    } finally {
      for (const w of waiters.splice(0)) w();
    }
  })();
  type Delivered = { event: { id: string }; sequence: bigint };
  const events = () =>
    items.flatMap((i): Delivered[] =>
      i.item.case === "event" ? [i.item.value as Delivered] : i.item.case === "batch" ? (i.item.value.events as Delivered[]) : [],
    );
  let ended = false;
  void done.then(() => {
    ended = true;
  });
  return {
    items,
    events,
    ids: () => events().map((e) => e.event.id),
    done,
    stop: () => ac.abort(),
    /** Waits until `pred` holds (or the stream ended). */
    async until(pred: () => boolean, timeoutMs = 15_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!pred()) {
        if (ended) throw new Error(`stream ended before the condition held: ${String(await done)}`);
        if (Date.now() > deadline) throw new Error(`timed out with ${items.length} items`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
  };
}

/** Where a client resumes: the last event's sequence (of a batch: its last event's), or a heartbeat's position. */
const lastPosition = (items: TailEventsResponse[]): bigint => {
  const { item } = items.at(-1)!;
  if (item.case === "event") return item.value.sequence;
  if (item.case === "batch") return item.value.events.at(-1)!.sequence;
  return item.value!.position;
};

describe("TailEvents", () => {
  forEachTransport((t) => {
    it("starts with a heartbeat at the head, then sends only the matching events committed after it", async () => {
      const { query } = clients(a.url, t1.query, t);
      const before = await append(a.url, t1.ingest, [{ id: `${t.protocol}-before`, action: "tail.match" }]);
      const tail = openTail(query, { filter: { actions: ["tail.match"], query: "-excluded" }, heartbeatSeconds: 1 });
      await tail.until(() => tail.items.length > 0);
      expect(tail.items[0]!.item).toEqual({ case: "heartbeat", value: expect.objectContaining({ position: before }) });
      await append(a.url, t1.ingest, [
        { id: `${t.protocol}-m1`, action: "tail.match" },
        { id: `${t.protocol}-x`, action: "tail.other" },
        { id: `${t.protocol}-m2`, action: "tail.match", message: "excluded" },
        { id: `${t.protocol}-m3`, action: "tail.match" },
      ]);
      await tail.until(() => tail.ids().length >= 2);
      // An idle stream gets heartbeats past the non-matching events.
      await tail.until(() => tail.items.at(-1)!.item.case === "heartbeat" && lastPosition(tail.items) === before + 4n);
      tail.stop();
      expect(tail.ids()).toEqual([`${t.protocol}-m1`, `${t.protocol}-m3`]);
      expect(tail.events().map((e) => e.sequence)).toEqual([before + 1n, before + 4n]);
    });
  });

  it("resumes on another replica from the last position with every event exactly once, in commit order", async () => {
    const ids = Array.from({ length: 400 }, (_, i) => `resume-${i}`);
    const first = openTail(clients(a.url, t1.query).query, { filter: { actions: ["tail.resume"] } });
    await first.until(() => first.items.length > 0);
    const producing = (async () => {
      for (let i = 0; i < ids.length; i += 20) {
        // Alternate replicas: each commit's NOTIFY reaches both listeners.
        await append(
          i % 40 ? b.url : a.url,
          t1.ingest,
          ids.slice(i, i + 20).map((id) => ({ id, action: "tail.resume" })),
        );
      }
    })();
    await first.until(() => first.ids().length >= 60);
    first.stop();
    await first.done;
    const received = first.ids();
    const second = openTail(clients(b.url, t1.query).query, {
      filter: { actions: ["tail.resume"] },
      afterPosition: lastPosition(first.items),
    });
    await producing;
    await second.until(() => received.length + second.ids().length >= ids.length);
    await new Promise((r) => setTimeout(r, 300));
    second.stop();
    expect([...received, ...second.ids()]).toEqual(ids);
    const seqs = [...first.events(), ...second.events()].map((e) => e.sequence);
    expect(seqs).toEqual([...seqs].sort((x, y) => (x < y ? -1 : 1)));
  });

  for (const t of [TRANSPORTS[0]!, TRANSPORTS[2]!]) {
    it(`batches with max_batch over ${t.name} (${t.name === "gRPC" ? "binary" : "JSON"}): in order, and resumed on another replica from the last event of the last batch exactly once`, async () => {
      const action = `tail.batch-${t.protocol}`;
      const ids = Array.from({ length: 300 }, (_, i) => `batch-${t.protocol}-${i}`);
      const first = openTail(clients(a.url, t1.query, t).query, { filter: { actions: [action] }, maxBatch: 25 });
      await first.until(() => first.items.length > 0);
      const producing = (async () => {
        for (let i = 0; i < ids.length; i += 30) {
          await append(
            i % 60 ? b.url : a.url,
            t1.ingest,
            ids.slice(i, i + 30).map((id) => ({ id, action })),
          );
        }
      })();
      await first.until(() => first.ids().length >= 90);
      first.stop();
      await first.done;
      const received = first.ids();
      const second = openTail(clients(b.url, t1.query, t).query, {
        filter: { actions: [action] },
        afterPosition: lastPosition(first.items),
        maxBatch: 25,
      });
      await producing;
      await second.until(() => received.length + second.ids().length >= ids.length);
      await new Promise((r) => setTimeout(r, 300));
      second.stop();
      expect([...received, ...second.ids()]).toEqual(ids);
      const seqs = [...first.events(), ...second.events()].map((e) => e.sequence);
      expect(seqs).toEqual([...seqs].sort((x, y) => (x < y ? -1 : 1)));
      // Events came only in batches, several at a time, never more than asked.
      const messages = [...first.items, ...second.items].filter((i) => i.item.case !== "heartbeat");
      expect(messages.every((i) => i.item.case === "batch")).toBe(true);
      const sizes = messages.map((i) => (i.item.case === "batch" ? i.item.value.events.length : 0));
      expect(Math.max(...sizes)).toBe(25);
      expect(Math.min(...sizes)).toBeGreaterThan(0);
    });
  }

  it("never sends an event before its transaction commits", async () => {
    await append(a.url, t1.ingest, [{ id: "commit-before" }]);
    // Only this test's events: the access audit records reads in the tenant's own log.
    const tail = openTail(clients(b.url, t1.query).query, { filter: { actions: ["tail.test"] }, heartbeatSeconds: 1 });
    await tail.until(() => tail.items.length > 0);
    // The real writer, with its COMMIT held back.
    const pool = new pg.Pool({ connectionString: a.databaseUrl, max: 1 });
    const reader = new pg.Pool({ connectionString: a.databaseUrl, max: 1 });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let committing!: () => void;
    const reachedCommit = new Promise<void>((r) => {
      committing = r;
    });
    // COMMIT ends the writer's last simple query (the rows, the heads and the notification with it).
    const held = {
      query: pool.query.bind(pool),
      async connect() {
        const c = await pool.connect();
        const query = c.query.bind(c) as (...args: unknown[]) => Promise<unknown>;
        (c as unknown as { query: unknown }).query = (...args: unknown[]) => {
          if (typeof args[0] !== "string" || !/(^|;\s*)COMMIT$/.test(args[0])) return query(...args);
          committing();
          return gate.then(() => query(...args));
        };
        return c;
      },
    } as unknown as pg.Pool;
    const record = recordFromEvent(create(EventSchema, event({ id: "commit-held" })));
    const write = writeBatch(held, [{ tenantId: t1.tenantId, record, ...sealContent(record) }]);
    let committed = 0n;
    try {
      await reachedCommit;
      // The writer holds the tenant's head until its COMMIT, so nothing else of the tenant commits
      // meanwhile; the access audit's record of this tail may have committed just before.
      committed = await committedHeadSystem(reader, t1.tenantId);
      const heartbeatsBefore = tail.items.length;
      await tail.until(() => tail.items.length >= heartbeatsBefore + 2);
      expect(tail.ids()).toEqual([]);
      // The heartbeats say where the stream stands: what is committed, not past it to the held event.
      expect(lastPosition(tail.items)).toBe(committed);
    } finally {
      // Held, the transaction would keep the tenant's head locked for the tests after this one.
      release();
      await write;
    }
    await tail.until(() => tail.ids().length === 1);
    tail.stop();
    await pool.end();
    await reader.end();
    expect(tail.ids()).toEqual(["commit-held"]);
    expect(tail.events()[0]!.sequence).toBe(committed + 1n);
  });

  it("ends a stalled subscriber with RESOURCE_EXHAUSTED and its resume position while another goes on", async () => {
    const n = 4000;
    const filter = { actions: ["tail.stall"] };
    const stalledClient = createClient(QueryService, createGrpcTransport({ baseUrl: a.url, interceptors: [bearerInterceptor(t1.query)] }));
    const ac = new AbortController();
    const stalled = stalledClient.tailEvents({ filter }, { signal: ac.signal })[Symbol.asyncIterator]();
    const hello = await stalled.next();
    expect(hello.value.item.case).toBe("heartbeat");
    const reading = openTail(clients(a.url, t1.query).query, { filter });
    await reading.until(() => reading.items.length > 0);
    const big = "x".repeat(2000);
    for (let i = 0; i < n; i += 200) {
      await append(
        a.url,
        t1.ingest,
        Array.from({ length: 200 }, (_, j) => ({ id: `stall-${i + j}`, action: "tail.stall", message: big })),
      );
      // The producer runs in this process too: a reader that keeps up is one commit behind at most.
      await reading.until(() => reading.ids().length >= i);
    }
    await reading.until(() => reading.ids().length === n);
    reading.stop();
    // The stalled stream now reads what reached it, then the error.
    const got: string[] = [];
    let error: ConnectError | null = null;
    try {
      for (let r = await stalled.next(); !r.done; r = await stalled.next()) {
        if (r.value.item.case === "event") got.push(r.value.item.value.event!.id);
      }
    } catch (err) {
      error = ConnectError.from(err);
    }
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(got.length).toBeLessThan(n);
    const resume = BigInt(/after_position (\d+)/.exec(error!.rawMessage)![1]!);
    const [info] = error!.findDetails(ErrorInfoSchema);
    expect(info).toMatchObject({ reason: "TAIL_BUFFER_OVERFLOW", metadata: { resume_position: String(resume) } });
    const rest = openTail(clients(b.url, t1.query).query, { filter, afterPosition: resume });
    await rest.until(() => got.length + rest.ids().length >= n);
    rest.stop();
    expect([...got, ...rest.ids()]).toEqual(Array.from({ length: n }, (_, i) => `stall-${i}`));
  });

  it("shows a tenant only its own events", async () => {
    const tail = openTail(clients(a.url, t2.query).query, { filter: { actions: ["tail.test"] }, heartbeatSeconds: 1 });
    await tail.until(() => tail.items.length > 0);
    await append(a.url, t1.ingest, [{ id: "iso-1" }, { id: "iso-2" }]);
    await append(b.url, t2.ingest, [{ id: "iso-own" }]);
    await tail.until(() => tail.ids().length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    tail.stop();
    expect(tail.ids()).toEqual(["iso-own"]);
    expect(tail.events()[0]).toMatchObject({ tenantId: t2.tenantId });
  });
});
