// Fault: AMQP ingest of 100,000 queued events (AUDITLOG_FAULT_AMQP_EVENTS)
// while the service is killed with kill -9 and restarted (a child process
// on the same database), then while RabbitMQ itself is restarted
// (`rabbitmqctl stop_app` / `start_app`: durable queue, persistent
// messages). Every event is stored exactly once and the chain verifies.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import amqp from "amqplib";
import pg from "pg";
import { expect, it } from "vitest";
import { EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { type ChildService, startChildService } from "../support/child-service.ts";
import { freshDatabase } from "../support/db.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys } from "../support/service.ts";
import { envInt, sleep } from "./harness.ts";

const N = envInt("AUDITLOG_FAULT_AMQP_EVENTS", 100_000);
const AMQP_URL = process.env.AUDITLOG_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const run = promisify(execFile);

it(`stores ${N} queued events exactly once through kill -9 of the service and a RabbitMQ restart`, { timeout: 900_000 }, async () => {
  const queue = `auditlog-fault-${randomBytes(4).toString("hex")}`;
  const tenantId = "amqp-fault";
  const db = await freshDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  pool.on("error", () => {});
  const env = {
    DATABASE_URL: db.url,
    AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY,
    ELASTICSEARCH_URL: "",
    AUDITLOG_SHUTDOWN_GRACE_MS: "1000",
    AUDITLOG_AMQP_URL: AMQP_URL,
    AUDITLOG_AMQP_QUEUES: `${queue}=${tenantId}`,
    LOG_LEVEL: "info",
  };
  // The consumer's log lines, shown when the count falls short.
  const dumpOutput = (s: ChildService | null) =>
    console.log(
      (s?.output() ?? "")
        .split("\n")
        .filter((l) => l.includes("amqp") || l.includes("rror"))
        .slice(-20)
        .join("\n"),
    );
  let svc: ChildService | null = await startChildService(env);
  const log: string[] = [];
  const count = async () => {
    const r = await pool.query<{ n: string; d: string }>("SELECT count(*) AS n, count(DISTINCT id) AS d FROM events WHERE tenant_id = $1", [
      tenantId,
    ]);
    return { rows: Number(r.rows[0]!.n), distinct: Number(r.rows[0]!.d) };
  };
  const waitStored = async (n: number, ms: number) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const c = await count();
      if (c.rows >= n || Date.now() > deadline) return c;
      await sleep(200);
    }
  };
  try {
    const keys = await createTenantWithKeys(svc.url, tenantId);
    // Publish everything first (persistent, confirmed): the queue holds the backlog.
    const conn = await amqp.connect(AMQP_URL);
    conn.on("error", () => {});
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: true });
    for (let i = 0; i < N; i++) {
      const e = create(EventSchema, {
        id: `q-${i}`,
        occurredAt: { seconds: 1_714_979_289n + BigInt(i) },
        action: "queue.fault",
        actor: { id: `user-${i % 97}` },
        metadata: { i },
      });
      const [body, contentType] =
        i % 2
          ? [Buffer.from(toBinary(EventSchema, e)), "application/x-protobuf"]
          : [Buffer.from(toJsonString(EventSchema, e)), "application/json"];
      if (!ch.sendToQueue(queue, body, { contentType, persistent: true })) await new Promise((r) => ch.once("drain", r));
    }
    await ch.waitForConfirms();
    await conn.close();
    log.push(`published ${N}`);

    const c1 = await waitStored(Math.floor(N * 0.3), 300_000);
    await svc.kill("SIGKILL");
    log.push(`kill -9 at ${c1.rows} stored`);
    svc = await startChildService(env);

    const c2 = await waitStored(Math.floor(N * 0.6), 300_000);
    await run("rabbitmqctl", ["stop_app"]);
    log.push(`RabbitMQ stopped at ${c2.rows} stored`);
    await sleep(2000);
    await run("rabbitmqctl", ["start_app"]);
    log.push("RabbitMQ started");

    const done = await waitStored(N, 600_000);
    log.push(`end: ${done.rows} rows, ${done.distinct} ids`);
    if (done.rows < N) dumpOutput(svc);
    // Nothing more arrives, and nothing is left on the queue or dead-lettered.
    await sleep(2000);
    const final = await count();
    const check = await amqp.connect(AMQP_URL);
    const cc = await check.createChannel();
    const q = await cc.checkQueue(queue);
    const dead = await cc.checkQueue(`${queue}.dead`);
    await cc.deleteQueue(queue);
    await cc.deleteQueue(`${queue}.dead`);
    await check.close();
    console.log(log.join("; "));
    expect(final).toEqual({ rows: N, distinct: N });
    expect(q.messageCount).toBe(0);
    expect(dead.messageCount).toBe(0);
    expect(svc.output()).toMatch(/amqp ingest: (connection lost|cannot connect)/);
    const v = await connectCall<{ ok: boolean; checked: string }>(svc.url, "auditlog.v1.QueryService/VerifyChain", {}, keys.query);
    expect(v.body).toMatchObject({ ok: true, checked: String(N) });
  } finally {
    await svc?.kill("SIGKILL");
    await pool.end();
    await db.drop();
  }
});
