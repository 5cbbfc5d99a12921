// Queue ingest beside API ingest: the same number of events into one
// service (a child process on a database of its own), first through the
// AMQP consumer (published to a durable queue, persistent, confirmed; timed
// from the first publish to the last event committed), then through
// IngestService.Append (batches of 500 from 4 concurrent producers).
//
//   npx node bench/amqp.ts [--events 50000] [--prefetch 500]
//     [--amqp-url amqp://guest:guest@127.0.0.1:5672] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import amqp from "amqplib";
import pg from "pg";
import { EventSchema } from "../gen/auditlog/v1/event_pb.js";
import { IngestService } from "../gen/auditlog/v1/ingest_pb.js";
import { connectCall } from "../scripts/lib/connect-json.ts";
import { procSample, startServiceChild } from "./service-child.ts";

const { values: a } = parseArgs({
  options: {
    events: { type: "string", default: "50000" },
    prefetch: { type: "string", default: "500" },
    "amqp-url": { type: "string", default: "amqp://guest:guest@127.0.0.1:5672" },
    "database-url": { type: "string", default: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
  },
});
const N = Number(a.events);
const queue = `auditlog-bench-${randomBytes(4).toString("hex")}`;
const tenantId = "bench-amqp";
const log = (m: string) => console.error(`[amqp-bench] ${m}`);

const event = (id: string, i: number) =>
  create(EventSchema, {
    id,
    occurredAt: { seconds: 1_714_979_289n + BigInt(i) },
    action: "bench.queue",
    actor: { id: `user-${i % 500}`, type: 1 },
    target: { type: "invoice", id: `inv-${i % 1000}` },
    message: `benchmark event ${i}`,
    metadata: { i, plan: i % 3 ? "pro" : "free" },
  });

const svc = await startServiceChild({
  adminDatabaseUrl: a["database-url"]!,
  name: `bench_amqp_${randomBytes(4).toString("hex")}`,
  env: { AUDITLOG_AMQP_URL: a["amqp-url"], AUDITLOG_AMQP_QUEUES: `${queue}=${tenantId}`, AUDITLOG_AMQP_PREFETCH: a.prefetch },
  log,
});
const pool = new pg.Pool({ connectionString: svc.databaseUrl, max: 1 });
pool.on("error", () => {});
const stored = async (prefix: string) =>
  Number(
    (await pool.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE tenant_id = $1 AND id LIKE $2", [tenantId, `${prefix}%`]))
      .rows[0]!.n,
  );
try {
  await connectCall(svc.url, "auditlog.v1.AdminService/CreateTenant", { id: tenantId, name: tenantId }, svc.operatorKey);
  const key = (
    await connectCall<{ secret: string }>(
      svc.url,
      "auditlog.v1.AdminService/CreateApiKey",
      { tenantId, name: "ingest", scopes: ["SCOPE_INGEST"] },
      svc.operatorKey,
    )
  ).body.secret;

  // Queue.
  const conn = await amqp.connect(a["amqp-url"]!);
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { durable: true });
  const t0 = performance.now();
  let peakRssKb = 0;
  const rss = setInterval(() => {
    peakRssKb = Math.max(peakRssKb, procSample(svc.pid)?.rssKb ?? 0);
  }, 250);
  for (let i = 0; i < N; i++) {
    const body = Buffer.from(toBinary(EventSchema, event(`q-${i}`, i)));
    if (!ch.sendToQueue(queue, body, { contentType: "application/x-protobuf", persistent: true })) {
      await new Promise((r) => ch.once("drain", r));
    }
  }
  await ch.waitForConfirms();
  const published = performance.now();
  while ((await stored("q-")) < N) await new Promise((r) => setTimeout(r, 100));
  const queueDone = performance.now();
  clearInterval(rss);
  const queueRate = N / ((queueDone - t0) / 1000);
  console.log(
    `AMQP queue: ${N} events (protobuf, persistent, prefetch ${a.prefetch}) stored in ${((queueDone - t0) / 1000).toFixed(1)} s: ` +
      `${queueRate.toFixed(0)} events/s (publishing took ${((published - t0) / 1000).toFixed(1)} s); service peak RSS ${(peakRssKb / 1024).toFixed(0)} MiB`,
  );
  await ch.deleteQueue(queue);
  await ch.deleteQueue(`${queue}.dead`);
  await conn.close();

  // API.
  const ingest = createClient(IngestService, createGrpcTransport({ baseUrl: svc.url }));
  const headers = { authorization: `Bearer ${key}` };
  let next = 0;
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (;;) {
        const start = next;
        if (start >= N) return;
        next = Math.min(N, start + 500);
        const events = Array.from({ length: next - start }, (_, j) => event(`a-${start + j}`, start + j));
        await ingest.append({ events }, { headers });
      }
    }),
  );
  const apiDone = performance.now();
  const apiRate = N / ((apiDone - t1) / 1000);
  console.log(
    `API Append: ${N} events (batches of 500, 4 producers, gRPC) stored in ${((apiDone - t1) / 1000).toFixed(1)} s: ${apiRate.toFixed(0)} events/s`,
  );
} finally {
  await pool.end();
  await svc.close();
}
