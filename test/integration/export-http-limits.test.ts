// GET /v1/export under the RPCs' limits (docs/ARCHITECTURE.md, "Limits").
//
// Against the whole service (src/app.ts's wiring), so that what is shared
// is shared: a download spends one read of its caller's rate, which the RPCs
// spend too (429 with Retry-After over HTTP, on record in the access audit,
// then RESOURCE_EXHAUSTED on the RPC at once, and the other way round); it
// holds one of its caller's open streams, which ExportEvents holds too; and
// it ends after the streams' longest duration (504 before the first byte). A download is held open by
// `min_position` beyond the tenant's head, which the Elasticsearch backend
// waits for (up to 10 s).
//
// Against the handler on a server of its own, with the limiters in hand:
// the stream is released however the download ends (complete, the client
// gone, a backend failure, a refusal before the first byte, the duration
// bound after the first byte).
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { Authenticator } from "../../src/auth/authenticator.ts";
import { hashSecret, newKeyId, newSecret } from "../../src/domain/api-key-secret.ts";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { createLogger } from "../../src/platform/log.ts";
import type { SearchBackend } from "../../src/search/backend.ts";
import { exportHttpHandler } from "../../src/services/export-http.ts";
import { CHUNK_BYTES } from "../../src/services/export-stream.ts";
import type { Limits } from "../../src/services/limits-interceptor.ts";
import { RateLimiter } from "../../src/services/rate-limiter.ts";
import { StreamLimiter } from "../../src/services/stream-limits.ts";
import { ApiKeyStore } from "../../src/store/api-key-store.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { createTenantWithKeys, startTestService, type TestService } from "../support/service.ts";

/** Far beyond any tenant's head: a download asking for it waits (Elasticsearch backend) until something ends it. */
const NEVER_INDEXED = "1000000000000";

type ErrorBody = { code: string; message: string; details?: { type: string }[] };

const as = (secret: string) => ({ headers: { authorization: `Bearer ${secret}` } });

function queryClient(url: string) {
  return createClient(QueryService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
}

async function refusal(p: Promise<unknown> | AsyncIterable<unknown>): Promise<ConnectError> {
  try {
    if (Symbol.asyncIterator in p) for await (const _ of p);
    else await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}

/** A stream meant to stay open: whether it was answered (refused, or ended by a bound) and a way to end it from the client's side. */
type Held = { answered: () => boolean; end: () => void };

/** GET /v1/export left open (it waits for `url`'s min_position). */
function openDownload(url: string, secret: string): Held {
  let answered = false;
  const req = http.get(url, { headers: { authorization: `Bearer ${secret}` } });
  req.once("response", () => {
    answered = true;
  });
  req.once("error", () => {}); // ended by the test
  return { answered: () => answered, end: () => req.destroy() };
}

/**
 * Opens a stream with `open` and returns it once it holds its key's one
 * stream, which shows when `probe` (a download of the same key) is refused.
 * A probe may take the stream first, and the held one is refused: then it is
 * opened again.
 */
async function holding(open: () => Held, probe: () => Promise<number>): Promise<Held> {
  let held = open();
  for (let i = 0; i < 200; i++) {
    if ((await probe()) === 429) return held;
    if (held.answered()) held = open();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the stream was never admitted");
}

/** The body, or the error that broke it. */
function bodyOf(res: http.IncomingMessage): Promise<{ text: string; complete: boolean }> {
  return new Promise((resolve) => {
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (c: string) => {
      text += c;
    });
    res.once("end", () => resolve({ text, complete: res.complete }));
    res.once("error", () => resolve({ text, complete: false }));
    res.once("close", () => resolve({ text, complete: res.complete }));
  });
}

/** Repeats `attempt` (up to ~10 s) until it gives `want`; returns the last status. */
async function until(attempt: () => Promise<number>, want: number): Promise<number> {
  let status = 0;
  for (let i = 0; i < 200 && status !== want; i++) {
    status = await attempt();
    if (status !== want) await new Promise((r) => setTimeout(r, 50));
  }
  return status;
}

describe("GET /v1/export and the RPCs share a caller's read rate (whole service)", () => {
  let svc: TestService;
  const url = () => `${svc.url}/v1/export?format=ndjson`;
  beforeAll(async () => {
    // Burst 2 at 1 request/s per key: the third read in a row is refused, for less than a second.
    // The access audit on: a download refused by a limit is on record like any refused export.
    svc = await startTestService({ AUDITLOG_KEY_READ_RATE: "1", AUDITLOG_KEY_READ_BURST: "2", AUDITLOG_ACCESS_AUDIT: "on" });
  }, 60_000);
  afterAll(async () => {
    await svc?.stop();
  });

  it("downloads spend the key's reads: 429 with Retry-After and a Connect JSON error, then the RPCs are refused too", async () => {
    const keys = await createTenantWithKeys(svc.url, "rate-http-first");
    let res: Response | null = null;
    for (let i = 0; i < 4; i++) {
      res = await fetch(url(), as(keys.query));
      if (res.status === 429) break;
      expect(res.status).toBe(200);
      await res.text();
    }
    expect(res!.status).toBe(429);
    // At most one token short at 1/s: under a second, rounded up.
    expect(res!.headers.get("retry-after")).toBe("1");
    expect(res!.headers.get("content-type")).toBe("application/json");
    const body = (await res!.json()) as ErrorBody;
    expect(body.code).toBe("resource_exhausted");
    expect(body.message).toMatch(
      /this API key is over its read rate \(1 requests\/s per server, bursts of up to 2\); retry after \d\.\d s/,
    );
    expect(body.details?.map((d) => d.type)).toEqual(["google.rpc.RetryInfo"]);
    const audit = await svc.pool.query<{ outcome: string; metadata: { via?: string; code?: string } }>(
      "SELECT outcome, metadata FROM events WHERE tenant_id = $1 AND action = 'auditlog.query.export_events' ORDER BY sequence",
      [keys.tenantId],
    );
    expect(audit.rows.at(-1)).toMatchObject({ outcome: "FAILURE", metadata: { via: "GET /v1/export", code: "resource_exhausted" } });
    // The same budget: the RPCs of the key are refused at once.
    const err = await refusal(queryClient(svc.url).searchEvents({}, as(keys.query)));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/this API key is over its read rate/);
    // Another key of the tenant has a budget of its own.
    expect((await fetch(url(), as(keys.all))).status).toBe(200);
  });

  it("RPC reads spend the key's reads: the download after them is refused with 429", async () => {
    const keys = await createTenantWithKeys(svc.url, "rate-rpc-first");
    const q = queryClient(svc.url);
    let err: ConnectError | null = null;
    for (let i = 0; i < 4 && !err; i++) {
      err = await q.getIndexStatus({}, as(keys.query)).then(
        () => null,
        (e: unknown) => ConnectError.from(e),
      );
    }
    expect(err?.code).toBe(Code.ResourceExhausted);
    const res = await fetch(url(), as(keys.query));
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as ErrorBody).code).toBe("resource_exhausted");
  });
});

describe("GET /v1/export and ExportEvents share a caller's open streams and their longest duration (whole service)", () => {
  let svc: TestService;
  const prefix = `test-export-limits-${randomBytes(4).toString("hex")}`;
  const held = () => `${svc.url}/v1/export?format=ndjson&min_position=${NEVER_INDEXED}`;
  const quick = () => `${svc.url}/v1/export?format=ndjson`;
  beforeAll(async () => {
    svc = await startTestService({
      ELASTICSEARCH_URL: inject("elasticsearchUrl"),
      AUDITLOG_ES_INDEX_PREFIX: prefix,
      AUDITLOG_RECONCILE_INTERVAL_MS: "0",
      AUDITLOG_KEY_MAX_STREAMS: "1",
      // Shorter than the 10 s a download waits for min_position, long enough for a test's few calls meanwhile.
      AUDITLOG_STREAM_MAX_MS: "6000",
    });
  }, 120_000);
  afterAll(async () => {
    await svc?.stop();
    const es = inject("elasticsearchUrl");
    await fetch(`${es}/${prefix}-*`, { method: "DELETE" });
    await fetch(`${es}/_index_template/${prefix}`, { method: "DELETE" });
  });

  const status = async (url: string, secret: string) => {
    const res = await fetch(url, as(secret));
    await res.text();
    return res.status;
  };

  it("an open download holds the key's one stream: another download gets 429, ExportEvents RESOURCE_EXHAUSTED; freed when the client leaves", async () => {
    const keys = await createTenantWithKeys(svc.url, "streams-http");
    // Complete downloads free their stream: one after the other they all pass.
    for (let i = 0; i < 3; i++) expect(await status(quick(), keys.query)).toBe(200);
    const open = await holding(
      () => openDownload(held(), keys.query),
      () => status(quick(), keys.query),
    );
    const res = await fetch(quick(), as(keys.query));
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("1");
    const body = (await res.json()) as ErrorBody;
    expect(body).toMatchObject({
      code: "resource_exhausted",
      message: expect.stringMatching(/already has 1 streams .* open on this server/),
    });
    expect(body.details?.map((d) => d.type)).toEqual(["google.rpc.RetryInfo"]);
    const err = await refusal(queryClient(svc.url).exportEvents({}, as(keys.query)));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toMatch(/already has 1 streams/);
    // Per caller: another key of the tenant exports.
    expect(await status(quick(), keys.all)).toBe(200);
    expect(open.answered()).toBe(false);
    open.end();
    expect(await until(() => status(quick(), keys.query), 200)).toBe(200);
  });

  it("an open ExportEvents holds the key's one stream: a download gets 429 until the RPC ends", async () => {
    const keys = await createTenantWithKeys(svc.url, "streams-rpc");
    let outcome!: Promise<ConnectError>;
    const openRpc = (): Held => {
      const abort = new AbortController();
      let answered = false;
      outcome = refusal(
        queryClient(svc.url).exportEvents({ minPosition: BigInt(NEVER_INDEXED) }, { ...as(keys.query), signal: abort.signal }),
      ).finally(() => {
        answered = true;
      });
      return { answered: () => answered, end: () => abort.abort() };
    };
    const rpc = await holding(openRpc, () => status(quick(), keys.query));
    expect(rpc.answered()).toBe(false);
    rpc.end();
    expect((await outcome).code).toBe(Code.Canceled);
    expect(await until(() => status(quick(), keys.query), 200)).toBe(200);
  });

  it("a download that runs past the longest stream duration ends with 504 before its first byte, and frees its stream", async () => {
    const keys = await createTenantWithKeys(svc.url, "streams-duration");
    const res = await fetch(held(), as(keys.query));
    expect(res.status).toBe(504);
    expect((await res.json()) as ErrorBody).toMatchObject({
      code: "deadline_exceeded",
      message: "this GET /v1/export download reached its longest allowed duration (6 s per stream); open a new stream",
    });
    expect(await status(quick(), keys.query)).toBe(200);
  });
});

describe("GET /v1/export releases its stream however it ends (the handler, limiters in hand)", () => {
  let svc: TestService;
  let server: http.Server;
  let base: string;
  let secret: string;
  let subjectKey: string;
  let records: StoredRecord[];
  const logLines: Record<string, unknown>[] = [];
  const streams = new StreamLimiter(1);
  const limits: Limits = { streams, streamBounds: { maxDurationMs: 0, idleMs: 0 } };
  const bounded: Limits = { streams, streamBounds: { maxDurationMs: 1500, idleMs: 0 } };
  /** Resolves with the finish of the next export that reaches its hold. */
  let nextHold = Promise.withResolvers<() => void>();

  /** Exports of the tenant's records, repeated to more than a chunk, then as `after` says. */
  function backendThen(after: "finish" | "hold" | "fail"): SearchBackend {
    const unused = () => Promise.reject(new Error("not used by the export"));
    return {
      name: "postgresql",
      search: unused,
      stats: unused,
      indexStatus: unused,
      waitForPosition: async () => true,
      async *export(_t, _q, _d, _l, signal) {
        const batch: StoredRecord[] = [];
        for (let size = 0; size < 2 * CHUNK_BYTES; size += 400) batch.push(records[batch.length % records.length]!);
        yield batch;
        if (after === "fail") throw new Error("backend lost mid-export");
        if (after === "hold") {
          await new Promise<void>((resolve, reject) => {
            signal.addEventListener("abort", () => reject(signal.reason), { once: true });
            const reached = nextHold;
            nextHold = Promise.withResolvers();
            reached.resolve(resolve);
          });
        }
      },
    };
  }

  beforeAll(async () => {
    svc = await startTestService();
    const tenant = await createTenantWithKeys(svc.url, "streams-handler");
    const append = await fetch(`${svc.url}/auditlog.v1.IngestService/Append`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tenant.ingest}` },
      body: JSON.stringify({ events: [0, 1, 2].map((i) => toConnectJson(makeEvent(i, "held"))) }),
    });
    expect(append.status).toBe(200);
    records = [];
    for await (const b of svc.backend.export("streams-handler", { conditions: [] }, "asc", null, new AbortController().signal)) {
      records.push(...b);
    }
    expect(records).toHaveLength(3);
    const keyStore = new ApiKeyStore(svc.pool);
    const id = newKeyId();
    secret = newSecret(id);
    await keyStore.create({
      id,
      tenantId: "streams-handler",
      name: "q",
      scopes: ["query"],
      secretHash: hashSecret(secret),
      expiresAt: null,
    });
    subjectKey = `key:${id}`;
    const log = createLogger({
      level: "info",
      stream: new Writable({
        write(chunk, _enc, cb) {
          logLines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
          cb();
        },
      }),
    });
    const auth = new Authenticator(keyStore, null, 0);
    const validator = createValidator();
    const handlers = {
      finish: exportHttpHandler({ auth, backend: backendThen("finish"), validator, log, limits }),
      hold: exportHttpHandler({ auth, backend: backendThen("hold"), validator, log, limits }),
      fail: exportHttpHandler({ auth, backend: backendThen("fail"), validator, log, limits }),
      "hold-bounded": exportHttpHandler({ auth, backend: backendThen("hold"), validator, log, limits: bounded }),
    };
    server = http.createServer(async (req, res) => {
      const h = handlers[String(req.headers["x-test-backend"]) as keyof typeof handlers];
      await h(req, res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await svc?.stop();
  });

  function download(backend: string, query = "format=ndjson") {
    const req = http.get(`${base}/v1/export?${query}`, { headers: { authorization: `Bearer ${secret}`, "x-test-backend": backend } });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
    });
    return { req, response };
  }

  const released = async () => {
    for (let i = 0; i < 100 && streams.active(subjectKey) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    return streams.active(subjectKey);
  };

  it("complete: held while the file streams, released once it has ended", async () => {
    const hold = nextHold.promise;
    const d = download("hold");
    const res = await d.response;
    expect(res.statusCode).toBe(200);
    const body = bodyOf(res);
    expect(streams.active(subjectKey)).toBe(1);
    const refused = await fetch(`${base}/v1/export`, { headers: { authorization: `Bearer ${secret}`, "x-test-backend": "finish" } });
    expect(refused.status).toBe(429);
    (await hold)();
    const { text, complete } = await body;
    expect(complete).toBe(true);
    expect(text.trimEnd().split("\n").length).toBeGreaterThan(100);
    expect(await released()).toBe(0);
  });

  it("the client gone mid-file: released", async () => {
    const d = download("hold");
    expect((await d.response).statusCode).toBe(200);
    expect(streams.active(subjectKey)).toBe(1);
    d.req.destroy();
    expect(await released()).toBe(0);
  });

  it("a backend failure after the first byte (connection aborted), or a refusal before it (400): released", async () => {
    const d = download("fail");
    const res = await d.response;
    expect(res.statusCode).toBe(200);
    expect((await bodyOf(res)).complete).toBe(false);
    expect(await released()).toBe(0);
    const bad = download("finish", "format=xml");
    expect((await bad.response).statusCode).toBe(400);
    expect(await released()).toBe(0);
  });

  it("past the longest duration after the first byte: the connection is aborted, logged, and the stream released", async () => {
    const d = download("hold-bounded");
    const res = await d.response;
    expect(res.statusCode).toBe(200);
    const { complete } = await bodyOf(res);
    expect(complete).toBe(false);
    expect(await released()).toBe(0);
    expect(logLines.some((l) => l["msg"] === "export reached its longest allowed duration after the first byte; connection aborted")).toBe(
      true,
    );
  });

  it("the read rate is spent before the stream is taken: refused at 429 without holding a stream", async () => {
    const clock = { t: 0 };
    const reads = new RateLimiter({
      work: "read",
      unit: "requests",
      perTenant: { ratePerSecond: 0, burst: 1 },
      perKey: { ratePerSecond: 1, burst: 1 },
      now: () => clock.t,
    });
    const h = exportHttpHandler({
      auth: new Authenticator(new ApiKeyStore(svc.pool), null, 0),
      backend: backendThen("finish"),
      validator: createValidator(),
      log: createLogger({ level: "error" }),
      limits: { reads, streams },
    });
    const own = http.createServer((req, res) => void h(req, res));
    await new Promise<void>((r) => own.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(own.address() as AddressInfo).port}/v1/export`;
      expect((await fetch(url, as(secret))).status).toBe(200);
      clock.t = 250;
      const res = await fetch(url, as(secret));
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(((await res.json()) as ErrorBody).message).toMatch(/this API key is over its read rate .* retry after 0\.8 s/);
      expect(streams.active(subjectKey)).toBe(0);
      clock.t = 1000;
      expect((await fetch(url, as(secret))).status).toBe(200);
    } finally {
      own.closeAllConnections();
      await new Promise((r) => own.close(r));
    }
  });
});
