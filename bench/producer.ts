// Benchmark producer: one client PROCESS, forked N times by bench/run.ts.
// It speaks gRPC with @grpc/grpc-js and stubs loaded from our .proto files
// (as a producer in another language would), sends realistic mixed events
// of 0.5-2 KB, records the latency of every acknowledgement in an
// HdrHistogram (microseconds) and reports counts and the encoded histogram
// to the parent over IPC.
//
// Modes (the parent sends one `ProducerTask` message after fork):
//
//   ingest  client-streaming IngestService.Ingest. The summary of a stream
//           arrives only when the stream ends, so the work is cut into many
//           short streams (`streamEvents`, default 2,000 events = 4 messages
//           of 500): each stream writes its messages respecting write()
//           backpressure ('drain'), then end(); ack latency = time from
//           end() to the summary (the commit of the stream's last events).
//           `streams` streams run concurrently in this process.
//   append  unary IngestService.Append: batches of `batch` events at a fixed
//           rate for `seconds`. Open loop: batch i is due at start + i/rate;
//           latency = ack time - due time (so a stalled server is not hidden
//           by the client waiting: no coordinated omission). At most
//           `maxInFlight` calls are outstanding; a batch that cannot be sent
//           on time is still sent (late) and its latency includes the wait.
//           With `recordAcks`, every ack's (wall time, position) is returned
//           for the index-lag measurement.
//
// The event generator (`benchEventJson`) is exported for run.ts, which uses
// it to build the same rows for the COPY baseline.
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as hdr from "hdr-histogram-js";
import { bearer, grpcTarget, loadAuditlogStubs, toStruct } from "../scripts/lib/grpc-client.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

export type ProducerTask =
  | {
      mode: "ingest";
      url: string;
      key: string;
      runId: string;
      producer: number;
      events: number;
      streamEvents: number;
      messageEvents: number;
      streams: number;
      deadlineMs: number;
    }
  | {
      mode: "append";
      url: string;
      key: string;
      runId: string;
      producer: number;
      rate: number;
      batch: number;
      seconds: number;
      maxInFlight: number;
      recordAcks: boolean;
    };

export type ProducerReport = {
  type: "report";
  producer: number;
  sent: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  conflicts: number;
  errors: number;
  firstError: string | null;
  acks: number;
  elapsedMs: number;
  /** Wall-clock ms (wallMs()) when the measured work started and ended. */
  startWallMs: number;
  endWallMs: number;
  /** hdr-histogram-js compressed base64, values in microseconds. */
  histogram: string;
  /** append + recordAcks: [wall-clock ms of the ack, position] pairs. */
  ackPositions: [number, string][];
};

export const HISTOGRAM_OPTS = { lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 } as const;

export function newHistogram(): hdr.Histogram {
  return hdr.build({ ...HISTOGRAM_OPTS });
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

// ---------------------------------------------------------------- events

const SERVICES = ["billing-api", "identity", "admin-console", "storage", "crm", "payments-worker"];
const ACTIONS: { action: string; target: string; changes: boolean }[] = [
  { action: "user.login", target: "session", changes: false },
  { action: "user.logout", target: "session", changes: false },
  { action: "user.password.changed", target: "user", changes: true },
  { action: "customer.created", target: "customer", changes: true },
  { action: "customer.updated", target: "customer", changes: true },
  { action: "customer.deleted", target: "customer", changes: true },
  { action: "invoice.billed", target: "invoice", changes: false },
  { action: "invoice.refunded", target: "invoice", changes: true },
  { action: "document.viewed", target: "document", changes: false },
  { action: "document.shared", target: "document", changes: true },
  { action: "role.granted", target: "role", changes: true },
  { action: "api_key.rotated", target: "api_key", changes: false },
  { action: "export.downloaded", target: "export", changes: false },
  { action: "settings.updated", target: "settings", changes: true },
];
const ACTOR_TYPES = ["ACTOR_TYPE_USER", "ACTOR_TYPE_USER", "ACTOR_TYPE_USER", "ACTOR_TYPE_SERVICE", "ACTOR_TYPE_SYSTEM"];
const OUTCOMES = ["OUTCOME_SUCCESS", "OUTCOME_SUCCESS", "OUTCOME_SUCCESS", "OUTCOME_SUCCESS", "OUTCOME_FAILURE", "OUTCOME_DENIED"];
const SEVERITIES = ["SEVERITY_INFO", "SEVERITY_INFO", "SEVERITY_INFO", "SEVERITY_WARNING", "SEVERITY_ERROR", "SEVERITY_CRITICAL"];
const PLANS = ["free", "pro", "business", "enterprise"];
const REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1"];
const WORDS = [
  "refund",
  "approved",
  "quarterly",
  "migration",
  "anomaly",
  "password",
  "suspicious",
  "renewal",
  "invoice",
  "discount",
  "overdue",
  "escalated",
  "compliance",
  "archive",
  "signature",
  "workspace",
  "billing",
  "audit",
];
const AGENTS = [
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "billing-worker/4.2.1 grpc-java/1.68",
  "curl/8.10.1",
];

/** Deterministic pseudo-random numbers from (seed, i). */
function rnd(seed: number, i: number): number {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 0x632be5ab, 0xc2b2ae35)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

function pick<T>(list: readonly T[], n: number): T {
  return list[n % list.length]!;
}

function words(seed: number, i: number, count: number): string {
  const out: string[] = [];
  for (let k = 0; k < count; k++) out.push(pick(WORDS, rnd(seed + k, i)));
  return out.join(" ");
}

/**
 * Event number `i` of producer `seed` in Connect / proto3 JSON form (times as
 * RFC 3339, enums by name, Structs as plain objects). 0.5-2 KB encoded.
 */
export function benchEventJson(runId: string, seed: number, i: number, nowMs = Date.now()): JsonObject {
  const r = rnd(seed, i);
  const a = ACTIONS[r % ACTIONS.length]!;
  const user = rnd(seed, i + 7) % 5000;
  const actorType = pick(ACTOR_TYPES, r >>> 3);
  const service = pick(SERVICES, r >>> 5);
  const size = r % 4; // 0..3: how much open content
  const metadata: JsonObject = {
    tenant_plan: pick(PLANS, r >>> 7),
    region: pick(REGIONS, r >>> 9),
    build: `2026.11.${(r >>> 11) % 30}`,
    billing: {
      plan: pick(PLANS, r >>> 13),
      amount: ((r >>> 4) % 100_000) / 100,
      currency: pick(["EUR", "USD", "GBP"], r >>> 15),
      card: { brand: pick(["visa", "mastercard", "amex"], r >>> 17), last4: String(1000 + ((r >>> 6) % 9000)) },
    },
    request: {
      path: `/v2/${a.target}s/${user}`,
      method: pick(["GET", "POST", "PATCH", "DELETE"], r >>> 19),
      status: pick([200, 201, 204, 403, 404, 500], r >>> 21),
    },
  };
  if (size >= 1) metadata["labels"] = [pick(WORDS, r >>> 2), pick(WORDS, r >>> 8), pick(WORDS, r >>> 12)];
  if (size >= 2) metadata["notes"] = words(seed, i, 20 + (r % 40));
  if (size >= 3) {
    metadata["items"] = Array.from({ length: 3 + (r % 5) }, (_, k) => ({
      sku: `sku-${(r >>> k) % 900}`,
      qty: 1 + (k % 4),
      price: ((r >>> k) % 10_000) / 100,
    }));
  }
  const event: JsonObject = {
    id: `${runId}-${seed}-${i}`,
    occurredAt: new Date(nowMs - ((r >>> 1) % 86_400_000)).toISOString(),
    action: a.action,
    actor: {
      id: actorType === "ACTOR_TYPE_USER" ? `user-${user}` : `svc-${service}`,
      type: actorType,
      name: actorType === "ACTOR_TYPE_USER" ? `User ${user}` : service,
      ip: `10.${(r >>> 3) % 256}.${(r >>> 11) % 256}.${(r >>> 19) % 256}`,
      userAgent: pick(AGENTS, r >>> 23),
      sessionId: `sess-${(user * 31 + (i >> 6)) % 100_000}`,
    },
    target: { type: a.target, id: `${a.target}-${rnd(seed, i + 3) % 20_000}`, name: `${a.target} ${rnd(seed, i + 5) % 20_000}` },
    outcome: pick(OUTCOMES, r >>> 25),
    severity: pick(SEVERITIES, r >>> 27),
    context: {
      requestId: `req-${runId}-${seed}-${i}`,
      traceId: (r.toString(16) + rnd(seed, i + 11).toString(16)).padStart(16, "0"),
      source: service,
      location: pick(REGIONS, r >>> 29),
    },
    metadata,
    message: `${a.action} by ${actorType === "ACTOR_TYPE_USER" ? `user-${user}` : service}: ${words(seed, i + 1, 4 + (r % 12))}`,
  };
  if (a.changes) {
    event["changes"] = {
      before: {
        status: "active",
        plan: pick(PLANS, r >>> 3),
        email: `user${user}@example.com`,
        limits: { seats: r % 50, storage_gb: r % 500 },
      },
      after: {
        status: pick(["active", "suspended", "closed"], r >>> 5),
        plan: pick(PLANS, r >>> 9),
        email: `user${user}@example.org`,
        limits: { seats: (r % 50) + 5, storage_gb: (r % 500) + 100 },
      },
    };
  }
  return event;
}

/** The @grpc/proto-loader shape of an event from benchEventJson. */
export function toGrpcEvent(e: JsonObject): Record<string, unknown> {
  const ms = Date.parse(e["occurredAt"] as string);
  const out: Record<string, unknown> = {
    ...e,
    occurredAt: { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 },
    metadata: toStruct(e["metadata"] as JsonObject),
  };
  const ch = e["changes"] as { before: JsonObject; after: JsonObject } | undefined;
  if (ch) out["changes"] = { before: toStruct(ch.before), after: toStruct(ch.after) };
  return out;
}

// ---------------------------------------------------------------- running

// Building and encoding events with @grpc/proto-loader (protobufjs, Struct
// spelled out) costs about 0.5 ms per event on a busy core: the producers
// would measure themselves instead of the service. So each producer encodes
// a pool of POOL_SIZE distinct events (without id) once, before the clock
// starts, and the requests are assembled from those bytes: every event gets
// its own id (`<run>-<producer>-<i>`) in front of the pooled content
// (protobuf fields may come in any order; the id is field 1 either way).
// The service still decodes, validates, hashes and stores every event.
export const POOL_SIZE = 2000;

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function readVarint(b: Buffer, at: number): [number, number] {
  let n = 0;
  let shift = 0;
  for (;;) {
    const byte = b[at++]!;
    n += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [n, at];
    shift += 7;
  }
}

type Pool = { bodies: Buffer[] };

function buildPool(serializeRequest: (r: unknown) => Buffer, runId: string, seed: number): Pool {
  const bodies: Buffer[] = [];
  for (let i = 0; i < POOL_SIZE; i++) {
    const ev = toGrpcEvent(benchEventJson(runId, seed, i));
    delete ev["id"];
    // IngestRequest/AppendRequest { repeated Event events = 1 } with one event: 0x0a <len> <event>.
    const msg = serializeRequest({ events: [ev] });
    const [, start] = readVarint(msg, 1);
    bodies.push(Buffer.from(msg.subarray(start)));
  }
  return { bodies };
}

/** The encoded request message (field 1 = events) for events from..from+n-1. */
export function encodeRequest(pool: Pool, runId: string, seed: number, from: number, n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = from; i < from + n; i++) {
    const id = Buffer.from(`${runId}-${seed}-${i}`);
    const body = pool.bodies[i % POOL_SIZE]!;
    const eventLen = 1 + varint(id.length).length + id.length + body.length;
    parts.push(Buffer.from([0x0a]), varint(eventLen), Buffer.from([0x0a]), varint(id.length), id, body);
  }
  return Buffer.concat(parts);
}

type RawClient = grpc.Client & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A client of IngestService whose requests are already-encoded bytes, and the pool to build them from. */
export function rawIngestClient(url: string, runId: string, seed: number): { client: RawClient; pool: Pool } {
  const stubs = loadAuditlogStubs();
  const def = (stubs.IngestService as unknown as { service: grpc.ServiceDefinition }).service;
  const ingest = def["Ingest"]!;
  const append = def["Append"]!;
  const pool = buildPool((r) => ingest.requestSerialize(r as never), runId, seed);
  const passthrough = (b: Buffer) => b;
  const Ctor = grpc.makeGenericClientConstructor(
    {
      Ingest: { ...ingest, requestSerialize: passthrough, requestDeserialize: passthrough },
      Append: { ...append, requestSerialize: passthrough, requestDeserialize: passthrough },
    },
    "IngestService",
  );
  const client = new Ctor(grpcTarget(url), grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  }) as RawClient;
  return { client, pool };
}

type Summary = { accepted: string; duplicates: string; rejected: string; conflicts: string; position: string };

function newReport(producer: number): ProducerReport {
  return {
    type: "report",
    producer,
    sent: 0,
    accepted: 0,
    duplicates: 0,
    rejected: 0,
    conflicts: 0,
    errors: 0,
    firstError: null,
    acks: 0,
    elapsedMs: 0,
    startWallMs: wallMs(),
    endWallMs: 0,
    histogram: "",
    ackPositions: [],
  };
}

function addSummary(rep: ProducerReport, s: Summary | undefined): void {
  if (!s) return;
  rep.accepted += Number(s.accepted);
  rep.duplicates += Number(s.duplicates);
  rep.rejected += Number(s.rejected);
  rep.conflicts += Number(s.conflicts);
}

async function runIngest(task: Extract<ProducerTask, { mode: "ingest" }>): Promise<ProducerReport> {
  const { client, pool } = rawIngestClient(task.url, task.runId, task.producer);
  const md = bearer(task.key);
  const hist = newHistogram();
  const rep = newReport(task.producer);
  const start = performance.now();
  rep.startWallMs = wallMs();
  const deadline = start + task.deadlineMs;
  let next = 0;
  const streamOnce = async (from: number, count: number) => {
    let endedAt = 0;
    let resolveAck!: (s: Summary | undefined) => void;
    let rejectAck!: (e: Error) => void;
    const ack = new Promise<Summary | undefined>((res, rej) => ((resolveAck = res), (rejectAck = rej)));
    ack.catch(() => undefined); // handled where awaited; never an unhandled rejection
    const call = client["Ingest"](md, (err: grpc.ServiceError | null, resp: { summary?: Summary }) => {
      if (err) rejectAck(err);
      else resolveAck(resp.summary);
    }) as grpc.ClientWritableStream<unknown>;
    try {
      for (let off = 0; off < count; off += task.messageEvents) {
        const n = Math.min(task.messageEvents, count - off);
        rep.sent += n;
        if (!call.write(encodeRequest(pool, task.runId, task.producer, from + off, n))) {
          await Promise.race([
            once(call, "drain"),
            ack.then(
              () => undefined,
              () => undefined,
            ),
          ]);
        }
      }
      endedAt = performance.now();
      call.end();
      const summary = await ack;
      hist.recordValue(Math.max(1, Math.round((performance.now() - endedAt) * 1000)));
      rep.acks++;
      addSummary(rep, summary);
    } catch (err) {
      rep.errors++;
      rep.firstError ??= String((err as Error).message ?? err);
      call.cancel();
    }
  };
  const worker = async () => {
    while (next < task.events && performance.now() < deadline) {
      const from = next;
      const count = Math.min(task.streamEvents, task.events - from);
      next += count;
      await streamOnce(from, count);
    }
  };
  await Promise.all(Array.from({ length: task.streams }, worker));
  rep.elapsedMs = performance.now() - start;
  rep.endWallMs = wallMs();
  rep.histogram = hdr.encodeIntoCompressedBase64(hist);
  client.close();
  return rep;
}

async function runAppend(task: Extract<ProducerTask, { mode: "append" }>): Promise<ProducerReport> {
  const { client, pool } = rawIngestClient(task.url, task.runId, task.producer);
  const md = bearer(task.key);
  const hist = newHistogram();
  const rep = newReport(task.producer);
  const intervalMs = (1000 * task.batch) / task.rate;
  const total = Math.max(1, Math.round((task.seconds * 1000) / intervalMs));
  // Warm up the connection (and the key cache) outside the measurement.
  await new Promise<void>((resolve) =>
    client["Append"](encodeRequest(pool, task.runId, task.producer, 999_999_999, 1), md, () => resolve()),
  );
  const start = performance.now();
  rep.startWallMs = wallMs();
  let inFlight = 0;
  let wake: (() => void) | null = null;
  const pending: Promise<void>[] = [];
  for (let b = 0; b < total; b++) {
    const due = start + b * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    while (inFlight >= task.maxInFlight) await new Promise<void>((r) => (wake = r));
    const request = encodeRequest(pool, task.runId, task.producer, b * task.batch, task.batch);
    rep.sent += task.batch;
    inFlight++;
    pending.push(
      new Promise<void>((resolve) => {
        client["Append"](request, md, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, resp: { summary?: Summary }) => {
          const now = performance.now();
          inFlight--;
          if (wake) {
            const w = wake;
            wake = null;
            w();
          }
          if (err) {
            rep.errors++;
            rep.firstError ??= err.message;
          } else {
            hist.recordValue(Math.max(1, Math.round((now - due) * 1000)));
            rep.acks++;
            addSummary(rep, resp.summary);
            if (task.recordAcks && resp.summary) rep.ackPositions.push([performance.timeOrigin + now, resp.summary.position]);
          }
          resolve();
        });
      }),
    );
  }
  await Promise.all(pending);
  rep.elapsedMs = performance.now() - start;
  rep.endWallMs = wallMs();
  rep.histogram = hdr.encodeIntoCompressedBase64(hist);
  client.close();
  return rep;
}

export async function runTask(task: ProducerTask): Promise<ProducerReport> {
  return task.mode === "ingest" ? runIngest(task) : runAppend(task);
}

// Forked by run.ts: wait for the task, run it, send the report, exit.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.send) {
  process.once("message", (task: ProducerTask) => {
    runTask(task).then(
      (rep) => process.send!(rep, () => process.exit(0)),
      (err) => {
        process.stderr.write(`producer ${task.producer} failed: ${(err as Error).stack ?? err}\n`);
        process.exit(1);
      },
    );
  });
}
