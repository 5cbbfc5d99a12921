// The transport's request gate (src/server/request-gate.ts) over real
// sockets, on gRPC, gRPC-Web and Connect: a call it refuses gets its error in
// the protocol's own wire format (with google.rpc.RetryInfo), the handler
// never runs and the body is never parsed (a body that is no message still
// gets the gate's answer), and the refusal is in the access log and the
// metrics like any call; a call it lets through is served once, with what
// the gate put in the context. A stub IngestService stands in for the real
// one (test/integration/ingest-rate-gate.test.ts runs the real service).
import { Writable } from "node:stream";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createContextKey, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { retryableError } from "../../src/platform/error-details.ts";
import { createLogger } from "../../src/platform/log.ts";
import { Metrics } from "../../src/platform/metrics.ts";
import { HealthState } from "../../src/server/health.ts";
import { type HttpServer, startHttpServer } from "../../src/server/http-server.ts";
import { NOT_JSON, NOT_PROTOBUF, rawUnaryCall } from "../support/raw-rpc.ts";
import { forEachTransport } from "../support/transports.ts";

const APPEND = "/auditlog.v1.IngestService/Append";
const REFUSE = "x-test-refuse";
const gateSawKey = createContextKey<string>("", { description: "set by the test gate" });

function memoryLogger() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    log: createLogger({ level: "info", stream }),
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const header =
  (name: string, value: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set(name, value);
    return next(req);
  };

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("request gate", () => {
  const logs = memoryLogger();
  const metrics = new Metrics();
  /** Events of each Append the handler got, and what the gate told it. */
  const served: { events: number; gateSaw: string }[] = [];
  let server: HttpServer;

  const refusals = async (protocol: string) => {
    const m = await metrics.registry.getSingleMetric("auditlog_rpc_requests_total")!.get();
    const v = m.values.find((x) => x.labels.method === "Append" && x.labels.code === "resource_exhausted");
    const lines = logs.lines().filter((l) => l.msg === "rpc" && l.procedure === APPEND && l.protocol === protocol);
    return { counted: v?.value ?? 0, logged: lines.filter((l) => l.code === "resource_exhausted").length, lines };
  };

  beforeAll(async () => {
    const health = new HealthState();
    server = await startHttpServer({
      host: "127.0.0.1",
      port: 0,
      allowedOrigins: [],
      health,
      log: logs.log,
      metrics,
      routes(router) {
        router.service(IngestService, {
          append(req, ctx) {
            served.push({ events: req.events.length, gateSaw: ctx.values.get(gateSawKey) });
            return {};
          },
        });
      },
      requestGate(ctx) {
        if (ctx.requestHeader.get(REFUSE)) {
          throw retryableError("this tenant is over its ingest rate; retry after 0.4 s", Code.ResourceExhausted, 400);
        }
        ctx.values.set(gateSawKey, `${ctx.service.typeName}/${ctx.method.name}`);
      },
    });
    health.set("", "SERVING");
  });
  afterAll(async () => {
    await server?.close(1000);
  });

  forEachTransport((t) => {
    it("answers the gate's refusal with its RetryInfo, never runs the handler, and counts and logs the call", async () => {
      const before = await refusals(t.protocol);
      const servedBefore = served.length;
      const ingest = createClient(IngestService, t.transport(server.url, [header(REFUSE, "1")]));
      const err = await failure(ingest.append({ events: [{ id: "e1" }] }));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toBe("this tenant is over its ingest rate; retry after 0.4 s");
      const [retry] = err.findDetails(RetryInfoSchema);
      expect(durationMs(retry!.retryDelay!)).toBe(400);
      expect(served.length).toBe(servedBefore);
      const after = await refusals(t.protocol);
      expect(after.counted).toBe(before.counted + 1);
      expect(after.logged).toBe(before.logged + 1);
      expect(after.lines.at(-1)).toMatchObject({ code: "resource_exhausted", level: "warn", error: err.rawMessage });
    });

    it("refuses a body that is no message with the gate's answer: the body is never parsed", async () => {
      const body = t.protocol === "connect" ? NOT_JSON : NOT_PROTOBUF;
      const refused = await rawUnaryCall(t.protocol, server.url, APPEND, body, { [REFUSE]: "1" });
      expect(refused.error?.code).toBe(Code.ResourceExhausted);
      expect(refused.httpStatus).toBe(t.protocol === "connect" ? 429 : 200);
      expect(durationMs(refused.error!.findDetails(RetryInfoSchema)[0]!.retryDelay!)).toBe(400);
      // Let through, the same body is parsed and fails as what it is.
      const parsed = await rawUnaryCall(t.protocol, server.url, APPEND, body);
      expect(parsed.error?.code).toBe(Code.InvalidArgument);
    });

    it("lets a call it does not refuse go on, served and logged once, with what the gate set in the context", async () => {
      const before = logs.lines().filter((l) => l.msg === "rpc" && l.procedure === APPEND && l.code === "ok").length;
      const ingest = createClient(IngestService, t.transport(server.url));
      await ingest.append({ events: [{ id: "a" }, { id: "b" }] });
      expect(served.at(-1)).toEqual({ events: 2, gateSaw: "auditlog.v1.IngestService/Append" });
      const after = logs.lines().filter((l) => l.msg === "rpc" && l.procedure === APPEND && l.code === "ok").length;
      expect(after).toBe(before + 1);
    });
  });
});
