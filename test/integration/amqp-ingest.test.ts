// AMQP ingest against the RabbitMQ of the machine (127.0.0.1:5672) and the
// real service in-process: bodies by content type, tenant by queue or by
// the message's API key, idempotency, and the dead-letter queue.
import { randomBytes } from "node:crypto";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import amqp, { type ChannelModel, type ConfirmChannel } from "amqplib";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const AMQP_URL = process.env.AUDITLOG_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const run = randomBytes(4).toString("hex");
const bound = `auditlog-test-${run}-bound`;
const keyed = `auditlog-test-${run}-keyed`;
const tenantA = `amqp-a-${run}`;
const tenantB = `amqp-b-${run}`;

let svc: TestService;
let keysA: TenantKeys;
let keysB: TenantKeys;
let conn: ChannelModel;
let ch: ConfirmChannel;
let db: pg.Pool;

beforeAll(async () => {
  conn = await amqp.connect(AMQP_URL);
  ch = await conn.createConfirmChannel();
  for (const q of [bound, keyed]) await ch.assertQueue(q, { durable: true });
  svc = await startTestService({
    AUDITLOG_AMQP_URL: AMQP_URL,
    AUDITLOG_AMQP_QUEUES: `${bound}=${tenantA},${keyed}`,
    AUDITLOG_AMQP_PREFETCH: "50",
  });
  keysA = await createTenantWithKeys(svc.url, tenantA);
  keysB = await createTenantWithKeys(svc.url, tenantB);
  db = new pg.Pool({ connectionString: svc.databaseUrl, max: 2 });
});

afterAll(async () => {
  await db?.end();
  await svc?.stop();
  for (const q of [bound, keyed, `${bound}.dead`, `${keyed}.dead`]) await ch?.deleteQueue(q).catch(() => {});
  await conn?.close();
});

const event = (id: string, init: Record<string, unknown> = {}) =>
  create(EventSchema, { id, occurredAt: { seconds: 1_714_979_289n }, action: "queue.test", actor: { id: "user-1" }, ...init });

function publish(queue: string, body: Buffer, contentType: string | undefined, headers: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) =>
    ch.sendToQueue(queue, body, { contentType, headers, persistent: true }, (err) => (err ? reject(err) : resolve())),
  );
}
const json = (id: string, init: Record<string, unknown> = {}) => Buffer.from(toJsonString(EventSchema, event(id, init)));
const proto = (id: string) => Buffer.from(toBinary(EventSchema, event(id)));

async function stored(tenantId: string, ids: string[]): Promise<Map<string, number>> {
  const r = await db.query<{ id: string; n: string }>(
    "SELECT id, count(*) AS n FROM events WHERE tenant_id = $1 AND id = ANY($2) GROUP BY id",
    [tenantId, ids],
  );
  return new Map(r.rows.map((x) => [x.id, Number(x.n)]));
}

async function waitFor<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function deadLetters(queue: string, n: number) {
  const got: { reason: string; field: string; body: string; headers: Record<string, unknown> }[] = [];
  const deadline = Date.now() + 20_000;
  while (got.length < n && Date.now() < deadline) {
    const m = await ch.get(`${queue}.dead`, { noAck: true });
    if (!m) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const h = m.properties.headers ?? {};
    got.push({ reason: String(h["x-auditlog-reason"]), field: String(h["x-auditlog-field"]), body: m.content.toString(), headers: h });
  }
  return got;
}

describe("AMQP ingest", () => {
  it("stores protobuf and JSON bodies of a queue bound to a tenant, each once however often it is published", async () => {
    await publish(bound, json("j1"), "application/json");
    await publish(bound, proto("p1"), "application/x-protobuf");
    await publish(bound, proto("p2"), "application/protobuf");
    await publish(bound, json("j1"), "application/json; charset=utf-8");
    await publish(bound, proto("p1"), "application/x-protobuf");
    const ids = ["j1", "p1", "p2"];
    const got = await waitFor(
      () => stored(tenantA, ids),
      (m) => m.size === 3,
    );
    expect(Object.fromEntries(got)).toEqual({ j1: 1, p1: 1, p2: 1 });
    // The redeliveries were acked too: nothing is left on the queue.
    const q = await waitFor(
      () => ch.checkQueue(bound),
      (c) => c.messageCount === 0,
    );
    expect(q.messageCount).toBe(0);
  });

  it("takes the tenant from the API key in a message's headers", async () => {
    await publish(keyed, json("k1"), "application/json", { authorization: `Bearer ${keysB.ingest}` });
    await publish(keyed, json("k2"), "application/json", { "x-api-key": keysB.ingest });
    const got = await waitFor(
      () => stored(tenantB, ["k1", "k2"]),
      (m) => m.size === 2,
    );
    expect(Object.fromEntries(got)).toEqual({ k1: 1, k2: 1 });
  });

  it("dead-letters what can never be stored, with the reason and field in headers", async () => {
    await publish(bound, Buffer.from("{not json"), "application/json");
    await publish(bound, Buffer.from([0xff, 0xff, 0xff]), "application/x-protobuf");
    await publish(bound, json("t1"), "text/plain");
    await publish(bound, json("bad-action", { action: "Not An Action!" }), "application/json");
    await publish(bound, json("j1", { action: "queue.other" }), "application/json"); // j1 exists with other content
    const bound5 = await deadLetters(bound, 5);
    expect(bound5.map((d) => d.field).sort()).toEqual(["", "", "action", "content_type", "id"]);
    expect(bound5.find((d) => d.field === "action")!.reason).toMatch(/action/);
    expect(bound5.find((d) => d.field === "content_type")!.reason).toMatch(/content type "text\/plain"/);
    expect(bound5.find((d) => d.field === "id")!.reason).toMatch(/different content/);
    // Messages are handled concurrently: dead letters come in any order.
    const unparsable = bound5.filter((d) => d.field === "").map((d) => d.reason);
    expect(unparsable).toHaveLength(2);
    expect(unparsable).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/not an auditlog.v1.Event in JSON/),
        expect.stringMatching(/not a protobuf auditlog.v1.Event/),
      ]),
    );

    await publish(keyed, json("nokey"), "application/json");
    await publish(keyed, json("badkey"), "application/json", { authorization: "Bearer alk_nope_nope" });
    await publish(keyed, json("querykey"), "application/json", { authorization: `Bearer ${keysB.query}` });
    const keyed3 = await deadLetters(keyed, 3);
    expect(keyed3.map((d) => d.field)).toEqual(["authorization", "authorization", "authorization"]);
    const byId = new Map(keyed3.map((d) => [JSON.parse(d.body).id as string, d.reason]));
    expect(byId.get("nokey")).toMatch(/missing/);
    expect(byId.get("querykey")).toMatch(/scope|ingest/i);
    // The key does not travel to the dead-letter queue.
    expect(keyed3.some((d) => "authorization" in d.headers)).toBe(false);
    expect(Object.fromEntries(await stored(tenantB, ["nokey", "badkey", "querykey"]))).toEqual({});
  });

  it("on a queue bound to a tenant, a message carrying a key must carry an ingest key of that tenant", async () => {
    await publish(bound, json("own-key"), "application/json", { authorization: `Bearer ${keysA.ingest}` });
    await publish(bound, json("other-key"), "application/json", { authorization: `Bearer ${keysB.ingest}` });
    await publish(bound, json("query-key"), "application/json", { "x-api-key": keysA.query });
    await publish(bound, json("bad-key"), "application/json", { authorization: "Bearer alk_nope_nope" });
    // Messages are handled concurrently: dead letters come in any order.
    const dead = new Map((await deadLetters(bound, 3)).map((d) => [JSON.parse(d.body).id as string, d]));
    expect([...dead.keys()].sort()).toEqual(["bad-key", "other-key", "query-key"]);
    for (const d of dead.values()) expect(d.field).toBe("authorization");
    expect(dead.get("other-key")!.reason).toBe(`the message's API key belongs to another tenant than the one queue "${bound}" is bound to`);
    expect(dead.get("query-key")!.reason).toMatch(/scope|ingest/i);
    const got = await waitFor(
      () => stored(tenantA, ["own-key"]),
      (m) => m.size === 1,
    );
    expect(Object.fromEntries(got)).toEqual({ "own-key": 1 });
    expect(Object.fromEntries(await stored(tenantA, ["other-key", "query-key", "bad-key"]))).toEqual({});
    expect(Object.fromEntries(await stored(tenantB, ["own-key", "other-key", "query-key", "bad-key"]))).toEqual({});
  });

  it("dead-letters a JSON body with an impossible calendar date instead of storing another day", async () => {
    const body = JSON.parse(json("feb30").toString()) as Record<string, unknown>;
    body.occurredAt = "2026-02-30T00:00:00Z";
    await publish(bound, Buffer.from(JSON.stringify(body)), "application/json");
    const [d] = await deadLetters(bound, 1);
    expect(d?.field).toBe("occurred_at");
    expect(d?.reason).toMatch(/RFC 3339/);
    expect(JSON.parse(d!.body).occurredAt).toBe("2026-02-30T00:00:00Z");
    expect(Object.fromEntries(await stored(tenantA, ["feb30"]))).toEqual({});
  });
});
