// The transport layer over real sockets: one cleartext port serving gRPC
// (HTTP/2 prior knowledge), Connect and gRPC-Web (HTTP/1.1), gRPC health,
// gRPC reflection (v1 and v1alpha), CORS, GET /healthz and graceful close.
//
// Besides health and reflection, the server runs a test service built at run
// time (test.v1.EchoService, importing google/protobuf/timestamp.proto and
// buf/validate/validate.proto) that reports the HTTP version it was reached
// over, so each client proves which transport it really used.
//
// What every protocol must do alike is one spec run over gRPC, gRPC-Web and
// Connect with typed clients (test/support/transports.ts), here and against
// the real service at the end; raw fetch() remains where the HTTP itself
// (status codes, headers, JSON error bodies) is the subject.

import { execFile } from "node:child_process";
import * as net from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary, type DescService, type Message } from "@bufbuild/protobuf";
import type { GenMessage, GenService } from "@bufbuild/protobuf/codegenv2";
import {
  FileDescriptorProtoSchema,
  file_google_protobuf_timestamp,
  type FileDescriptorProto,
  type Timestamp,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, ConnectError, cors, createClient, createContextKey, createContextValues, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/health/v1/health_pb.js";
import { HealthState } from "../../src/server/health.ts";
import { startHttpServer, type HttpServer } from "../../src/server/http-server.ts";
import { createLogger, type Logger } from "../../src/platform/log.ts";
import { EventStatus } from "../../gen/auditlog/v1/ingest_pb.js";
import { forEachServiceTransport, forEachTransport } from "../support/transports.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const BUF = join(ROOT, "node_modules", ".bin", "buf");
const HEALTH_PROTO = join(ROOT, "node_modules", "grpc-health-check", "proto", "health", "v1", "health.proto");
const ALLOWED_ORIGIN = "https://console.example.com";
const run = promisify(execFile);

// ---- test service, described at run time ----------------------------------

function buildEchoService(): DescService {
  const TYPE_STRING = 9;
  const TYPE_MESSAGE = 11;
  const LABEL_OPTIONAL = 1;
  const proto = create(FileDescriptorProtoSchema, {
    name: "test/v1/echo.proto",
    package: "test.v1",
    syntax: "proto3",
    dependency: ["google/protobuf/timestamp.proto", "buf/validate/validate.proto"],
    messageType: [
      {
        name: "EchoRequest",
        field: [
          { name: "text", jsonName: "text", number: 1, type: TYPE_STRING, label: LABEL_OPTIONAL },
          {
            name: "at",
            jsonName: "at",
            number: 2,
            type: TYPE_MESSAGE,
            typeName: ".google.protobuf.Timestamp",
            label: LABEL_OPTIONAL,
          },
        ],
      },
      {
        name: "EchoResponse",
        field: [{ name: "text", jsonName: "text", number: 1, type: TYPE_STRING, label: LABEL_OPTIONAL }],
      },
    ],
    service: [
      {
        name: "EchoService",
        method: [
          { name: "Echo", inputType: ".test.v1.EchoRequest", outputType: ".test.v1.EchoResponse" },
          {
            name: "Collect",
            inputType: ".test.v1.EchoRequest",
            outputType: ".test.v1.EchoResponse",
            clientStreaming: true,
          },
        ],
      },
    ],
  });
  const deps = new Map([file_google_protobuf_timestamp, file_buf_validate_validate].map((f) => [f.proto.name, f]));
  const service = createFileRegistry(proto, (name) => deps.get(name)).getService("test.v1.EchoService");
  if (service === undefined) throw new Error("test service missing");
  return service;
}

// What protoc-gen-es would declare for this service.
type EchoRequest = Message<"test.v1.EchoRequest"> & { text: string; at?: Timestamp };
type EchoResponse = Message<"test.v1.EchoResponse"> & { text: string };
type EchoServiceDesc = GenService<{
  echo: { methodKind: "unary"; input: GenMessage<EchoRequest>; output: GenMessage<EchoResponse> };
  collect: { methodKind: "client_streaming"; input: GenMessage<EchoRequest>; output: GenMessage<EchoResponse> };
}>;
const EchoService = buildEchoService() as unknown as EchoServiceDesc;
type EchoMessage = { text: string };
const httpVersionKey = createContextKey<string>("?", { description: "HTTP version of the request" });

// ---- helpers ----------------------------------------------------------------

function memoryLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    log: createLogger({ level: "debug", stream }),
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function startTestServer(health: HealthState, log: Logger): Promise<HttpServer> {
  return startHttpServer({
    host: "127.0.0.1",
    port: 0,
    allowedOrigins: [ALLOWED_ORIGIN],
    health,
    log,
    maxMessageBytes: 64 * 1024,
    contextValues: (req) => createContextValues().set(httpVersionKey, req.httpVersion),
    routes(router) {
      router.service(EchoService, {
        echo(req, ctx) {
          return { text: `${req.text} via HTTP/${ctx.values.get(httpVersionKey)}` };
        },
        async collect(reqs) {
          const texts: string[] = [];
          for await (const req of reqs) texts.push(req.text);
          return { text: texts.join(",") };
        },
      });
    },
  });
}

type GrpcHealthClient = grpc.Client & {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

function grpcHealthClient(url: string): GrpcHealthClient {
  const def = protoLoader.loadSync(HEALTH_PROTO, { enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const target = new URL(url).host;
  return new pkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure()) as unknown as GrpcHealthClient;
}

function grpcCheck(client: GrpcHealthClient, service: string): Promise<{ status: string }> {
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res as { status: string }))),
  );
}

/** An async iterable fed by hand, for client streams. */
function pushable<T>(): { iterable: AsyncIterable<T>; push(v: T): void; end(): void } {
  const queue: T[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    push(v) {
      queue.push(v);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    iterable: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (queue.length > 0) yield queue.shift() as T;
          if (ended) return;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      },
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function buf(args: string[]): Promise<string> {
  const { stdout } = await run(BUF, args, { timeout: 30_000 });
  return stdout;
}

// ---- the running server -----------------------------------------------------

describe("transport", () => {
  const health = new HealthState();
  const logs = memoryLogger();
  let server: HttpServer;

  beforeAll(async () => {
    server = await startTestServer(health, logs.log);
    health.set("", "SERVING");
    health.set("test.v1.EchoService", "SERVING");
  });
  afterAll(async () => {
    await server?.close(1000);
  });

  it("(a) gRPC over h2c: a @grpc/grpc-js client calls Health.Check", async () => {
    const client = grpcHealthClient(server.url);
    try {
      expect(await grpcCheck(client, "")).toEqual({ status: "SERVING" });
      expect(await grpcCheck(client, "test.v1.EchoService")).toEqual({ status: "SERVING" });
      // gRPC health spec: unknown service names are NOT_FOUND.
      const err = await grpcCheck(client, "no.such.Service").catch((e: grpc.ServiceError) => e);
      expect((err as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
    // Access log: one line per RPC with procedure, protocol and code.
    const lines = logs.lines().filter((l) => l.msg === "rpc");
    expect(lines).toContainEqual(expect.objectContaining({ procedure: "/grpc.health.v1.Health/Check", protocol: "grpc", code: "ok" }));
    expect(lines).toContainEqual(expect.objectContaining({ procedure: "/grpc.health.v1.Health/Check", code: "not_found", level: "info" }));
  });

  it("(b) Connect over HTTP/1.1: plain fetch calls Health.Check with JSON; errors are HTTP statuses with JSON bodies", async () => {
    const res = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: JSON.stringify({ service: "" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ status: "SERVING" });

    // Not found in the Connect protocol: HTTP 404 + JSON error body.
    const missing = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "nope" }),
    });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "not_found" });

    // Misspelled fields are rejected, not ignored.
    const typo = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ servce: "" }),
    });
    expect(typo.status).toBe(400);
    expect(await typo.json()).toMatchObject({ code: "invalid_argument" });

    // readMaxBytes (64 KiB here): a bigger message is resource_exhausted.
    const big = await fetch(`${server.url}/test.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "x".repeat(100_000) }),
    });
    expect(big.status).toBe(429);
    expect(await big.json()).toMatchObject({ code: "resource_exhausted" });

    // Calls rejected before the interceptors still leave an access log line.
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({ msg: "rpc rejected", procedure: "/test.v1.EchoService/Echo", httpStatus: 429 }),
    );

    // Unknown paths are a plain 404.
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
  });

  // (c) and the typed-client side of (a) and (b): the same calls over each protocol.
  forEachTransport((t) => {
    it("Health.Check answers SERVING, and NOT_FOUND for an unknown service", async () => {
      const healthClient = createClient(Health, t.transport(server.url));
      expect((await healthClient.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      const err = await healthClient.check({ service: "nope" }).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.NotFound);
    });

    it(`reaches the service over HTTP/${t.httpVersion}`, async () => {
      const echo = createClient(EchoService, t.transport(server.url));
      expect((await echo.echo({ text: "hi" })).text).toBe(`hi via HTTP/${t.httpVersion === "2" ? "2.0" : "1.1"}`);
    });

    if (t.clientStreams)
      it("carries a client stream", async () => {
        const echo = createClient(EchoService, t.transport(server.url));
        const input = pushable<EchoMessage>();
        const collected = echo.collect(input.iterable);
        for (const text of ["a", "b", "c"]) input.push({ text });
        input.end();
        expect((await collected).text).toBe("a,b,c");
      });

    it("Health.Watch streams the current status and every change", async () => {
      const service = `late.${t.name}`;
      const client = createClient(Health, t.transport(server.url));
      const abort = new AbortController();
      const seen: HealthCheckResponse_ServingStatus[] = [];
      const done = (async () => {
        try {
          for await (const res of client.watch({ service }, { signal: abort.signal })) {
            seen.push(res.status);
            if (seen.length === 3) abort.abort();
          }
        } catch (e) {
          if (ConnectError.from(e).code !== Code.Canceled) throw e;
        }
      })();
      while (seen.length < 1) await sleep(10);
      health.set(service, "NOT_SERVING");
      while (seen.length < 2) await sleep(10);
      health.set(service, "SERVING");
      await done;
      expect(seen).toEqual([
        HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN,
        HealthCheckResponse_ServingStatus.NOT_SERVING,
        HealthCheckResponse_ServingStatus.SERVING,
      ]);
      // The stream the client abandoned is logged as canceled.
      await vi.waitFor(() =>
        expect(logs.lines()).toContainEqual(
          expect.objectContaining({ msg: "rpc", procedure: "/grpc.health.v1.Health/Watch", protocol: t.protocol, code: "canceled" }),
        ),
      );
    });
  });

  it("(d) reflection: buf curl lists the services (v1 and v1alpha) and calls through them", { timeout: 30_000 }, async () => {
    const list = await buf(["curl", "--list-methods", "--http2-prior-knowledge", "--protocol", "grpc", server.url]);
    const methods = list.trim().split("\n");
    expect(methods).toEqual(
      expect.arrayContaining([
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "test.v1.EchoService/Echo",
        "test.v1.EchoService/Collect",
      ]),
    );
    const listAlpha = await buf([
      "curl",
      "--list-methods",
      "--http2-prior-knowledge",
      "--protocol",
      "grpc",
      "--reflect-protocol",
      "grpc-v1alpha",
      server.url,
    ]);
    expect(listAlpha.trim().split("\n").sort()).toEqual([...methods].sort());

    // A call whose schema buf curl must resolve through reflection, including
    // google/protobuf/timestamp.proto and buf/validate/validate.proto.
    const out = await buf([
      "curl",
      "--http2-prior-knowledge",
      "--protocol",
      "grpc",
      "-d",
      JSON.stringify({ text: "reflected", at: "2024-05-01T12:00:00Z" }),
      `${server.url}/test.v1.EchoService/Echo`,
    ]);
    expect(JSON.parse(out)).toEqual({ text: "reflected via HTTP/2.0" });
  });

  it("(d) reflection: file_containing_symbol returns the file and all transitive imports; misses are NOT_FOUND", async () => {
    const transport = createGrpcTransport({ baseUrl: server.url });
    const clients = [
      createClient(reflectionV1.ServerReflection, transport),
      // Same shape, other package: the v1alpha client is used through the v1 types.
      createClient(reflectionV1alpha.ServerReflection, transport) as unknown as Client<typeof reflectionV1.ServerReflection>,
    ];
    for (const client of clients) {
      const requests = [
        { messageRequest: { case: "fileContainingSymbol" as const, value: "test.v1.EchoService" } },
        { messageRequest: { case: "fileContainingSymbol" as const, value: "test.v1.EchoService.Echo" } },
        { messageRequest: { case: "fileByFilename" as const, value: "health/v1/health.proto" } },
        { messageRequest: { case: "fileContainingSymbol" as const, value: "no.such.Symbol" } },
        { messageRequest: { case: "fileByFilename" as const, value: "no/such.proto" } },
        { messageRequest: { case: "listServices" as const, value: "" } },
      ];
      const responses: reflectionV1.ServerReflectionResponse[] = [];
      for await (const res of client.serverReflectionInfo(
        (async function* () {
          for (const r of requests) yield { host: "", ...r };
        })(),
      )) {
        responses.push(res);
      }
      expect(responses).toHaveLength(requests.length);

      const files = (i: number): FileDescriptorProto[] => {
        const r = responses[i].messageResponse;
        if (r.case !== "fileDescriptorResponse") throw new Error(`response ${i} is ${r.case}`);
        return r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
      };
      for (const i of [0, 1]) {
        const got = files(i);
        const names = got.map((f) => f.name);
        expect(names[0]).toBe("test/v1/echo.proto");
        expect(names).toEqual(
          expect.arrayContaining(["google/protobuf/timestamp.proto", "buf/validate/validate.proto", "google/protobuf/descriptor.proto"]),
        );
        expect(new Set(names).size).toBe(names.length);
        // Closed under imports: every dependency of every file is included.
        for (const f of got) for (const dep of f.dependency) expect(names).toContain(dep);
        expect(got[0].service[0].method.map((m) => m.name)).toEqual(["Echo", "Collect"]);
      }
      expect(files(2).map((f) => f.name)).toEqual(["health/v1/health.proto"]);
      for (const i of [3, 4]) {
        const r = responses[i].messageResponse;
        expect(r.case).toBe("errorResponse");
        expect(r.case === "errorResponse" && r.value.errorCode).toBe(Code.NotFound);
      }
      const listed = responses[5].messageResponse;
      expect(listed.case).toBe("listServicesResponse");
      expect(listed.case === "listServicesResponse" && listed.value.service.map((s) => s.name)).toEqual([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "test.v1.EchoService",
      ]);
      expect(responses[3].originalRequest?.messageRequest).toEqual({
        case: "fileContainingSymbol",
        value: "no.such.Symbol",
      });
    }
  });

  it("(e) CORS: preflight from an allowed origin gets the headers, another origin does not", async () => {
    const preflight = (origin: string) =>
      fetch(`${server.url}/grpc.health.v1.Health/Check`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,connect-protocol-version,authorization",
        },
      });
    const ok = await preflight(ALLOWED_ORIGIN);
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
    const methods = ok.headers.get("access-control-allow-methods")?.split(/,\s*/) ?? [];
    expect(methods).toEqual(expect.arrayContaining([...cors.allowedMethods]));
    const allowed = ok.headers.get("access-control-allow-headers")?.toLowerCase().split(/,\s*/) ?? [];
    expect(allowed).toEqual(expect.arrayContaining([...cors.allowedHeaders.map((h) => h.toLowerCase()), "authorization"]));
    expect(ok.headers.get("access-control-max-age")).toBe("7200");
    expect(ok.headers.get("vary")).toMatch(/Origin/);

    const bad = await preflight("https://evil.example.com");
    expect(bad.status).toBe(204);
    expect(bad.headers.get("access-control-allow-origin")).toBeNull();
    expect(bad.headers.get("access-control-allow-methods")).toBeNull();

    // The actual call from the allowed origin exposes the gRPC/Connect headers.
    const call = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { origin: ALLOWED_ORIGIN, "content-type": "application/json" },
      body: "{}",
    });
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
    const exposed = call.headers.get("access-control-expose-headers")?.toLowerCase().split(/,\s*/) ?? [];
    expect(exposed).toEqual(expect.arrayContaining(["grpc-status", "grpc-message", "grpc-status-details-bin"]));
    // Preflights are not RPCs: no access log line for them.
    expect(logs.lines().filter((l) => l.msg === "rpc rejected" && l.httpStatus === 204)).toEqual([]);
    const other = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { origin: "https://evil.example.com", "content-type": "application/json" },
      body: "{}",
    });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("(f) GET /healthz follows the overall health", async () => {
    const first = await fetch(`${server.url}/healthz`);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ status: "SERVING" });
    health.set("", "NOT_SERVING");
    try {
      const second = await fetch(`${server.url}/healthz`);
      expect(second.status).toBe(503);
      expect(await second.json()).toEqual({ status: "NOT_SERVING" });
    } finally {
      health.set("", "SERVING");
    }
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

// ---- graceful close ---------------------------------------------------------

describe("close(grace)", () => {
  it("(g) ends in-flight Watch streams cleanly, lets client streams finish, then refuses connections", { timeout: 30_000 }, async () => {
    const health = new HealthState({ "": "SERVING" });
    const logs = memoryLogger();
    const server = await startTestServer(health, logs.log);
    const grpcClient = grpcHealthClient(server.url);
    try {
      // Watch over gRPC (HTTP/2).
      const watched: string[] = [];
      const watch = grpcClient.Watch({ service: "" });
      watch.on("data", (m: { status: string }) => watched.push(m.status));
      const watchStatus = new Promise<grpc.StatusObject>((resolve) => watch.on("status", resolve));
      watch.on("error", () => {});
      // Watch over the Connect protocol (HTTP/1.1).
      const h1Health = createClient(Health, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
      const h1Watched: HealthCheckResponse_ServingStatus[] = [];
      const h1Done = (async () => {
        for await (const res of h1Health.watch({ service: "" })) h1Watched.push(res.status);
      })();
      // A client stream (HTTP/2) that is still sending when close() starts.
      const echo = createClient(EchoService, createGrpcTransport({ baseUrl: server.url }));
      const input = pushable<EchoMessage>();
      const collected = echo.collect(input.iterable);
      input.push({ text: "one" });

      while (watched.length < 1 || h1Watched.length < 1) await sleep(10);
      expect(watched).toEqual(["SERVING"]);
      expect(h1Watched).toEqual([HealthCheckResponse_ServingStatus.SERVING]);

      const started = Date.now();
      const closed = server.close(5_000);
      await sleep(100);
      // New connections are refused while in-flight calls drain.
      const refused = await new Promise<string>((resolve) => {
        const socket = net.connect(server.port, "127.0.0.1");
        socket.on("connect", () => {
          socket.destroy();
          resolve("connected");
        });
        socket.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      });
      expect(refused).toBe("ECONNREFUSED");
      // The client stream is still alive and can finish.
      input.push({ text: "two" });
      input.end();
      expect((await collected).text).toBe("one,two");

      // The Watch streams got NOT_SERVING and then ended with OK.
      const status = await watchStatus;
      expect(status.code).toBe(grpc.status.OK);
      expect(watched).toEqual(["SERVING", "NOT_SERVING"]);
      await h1Done;
      expect(h1Watched).toEqual([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);

      await closed;
      // Everything ended on its own: no waiting for the grace period.
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(logs.lines().some((l) => l.msg === "shutdown grace period over, closing remaining connections")).toBe(false);
      await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    } finally {
      grpcClient.close();
      await server.close(0);
    }
  });

  it("(g) cuts what is still open when the grace period is over", { timeout: 30_000 }, async () => {
    const health = new HealthState({ "": "SERVING" });
    const logs = memoryLogger();
    const server = await startTestServer(health, logs.log);
    const echo = createClient(EchoService, createGrpcTransport({ baseUrl: server.url }));
    const input = pushable<EchoMessage>();
    const collected = echo.collect(input.iterable).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    input.push({ text: "never finished" });
    await sleep(100);
    const started = Date.now();
    await server.close(500);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(2_000);
    const err = await collected;
    expect(err).toBeInstanceOf(ConnectError);
    expect(logs.lines().some((l) => l.msg === "shutdown grace period over, closing remaining connections")).toBe(true);
    input.end();
  });
});

// ---- the auditlog service on each protocol ----------------------------------

describe("the auditlog service", () => {
  forEachServiceTransport((s) => {
    const event = (id: string) => ({
      id: `${s.t.protocol}-${id}`,
      occurredAt: { seconds: 1_714_979_289n },
      action: "customer.created",
      actor: { id: "user-1" },
    });

    it("Append, a resend (DUPLICATE) and GetEvent round-trip the typed messages", async () => {
      const { ingest, query } = s.clients(s.tenant.all);
      const first = await ingest.append({ events: [event("a1"), event("a2")] });
      expect(first.summary).toMatchObject({ accepted: 2n, duplicates: 0n, results: [] });
      const again = await ingest.append({ events: [event("a1")] });
      expect(again.summary!.results.map((r) => [r.id, r.status])).toEqual([[`${s.t.protocol}-a1`, EventStatus.DUPLICATE]]);
      const { event: stored } = await query.getEvent({ id: `${s.t.protocol}-a2` });
      expect(stored).toMatchObject({ tenantId: s.tenant.tenantId, sequence: first.summary!.position });
      expect(stored!.event).toMatchObject({
        id: `${s.t.protocol}-a2`,
        action: "customer.created",
        occurredAt: { seconds: 1_714_979_289n },
      });
    });

    it("status codes and messages arrive the same way", async () => {
      const codeOf = (p: Promise<unknown>) =>
        p.then(
          () => null,
          (e: unknown) => ConnectError.from(e),
        );
      const noKey = await codeOf(s.clients().query.getEvent({ id: "x" }));
      expect(noKey?.code).toBe(Code.Unauthenticated);
      const wrongScope = await codeOf(s.clients(s.tenant.query).ingest.append({ events: [event("w1")] }));
      expect(wrongScope?.code).toBe(Code.PermissionDenied);
      expect(wrongScope?.rawMessage).toBe('this API key lacks the "ingest" scope');
      const missing = await codeOf(s.clients(s.tenant.query).query.getEvent({ id: "no-such-event" }));
      expect(missing?.code).toBe(Code.NotFound);
      expect(missing?.rawMessage).toBe('no event with id "no-such-event"');
      const invalid = await codeOf(s.clients(s.tenant.ingest).ingest.append({ events: [{ ...event("i1"), action: "Bad Action" }] }));
      expect(invalid?.code).toBe(Code.InvalidArgument);
      expect(invalid?.rawMessage).toMatch(/^events\[0\] \(id "[a-z-]+-i1"\): action: /);
      const exists = await codeOf(s.clients(s.operatorKey).admin.createTenant({ id: s.tenant.tenantId, name: "again" }));
      expect(exists?.code).toBe(Code.AlreadyExists);
    });

    if (s.t.clientStreams)
      it("Ingest takes a client stream and answers once for all its messages", async () => {
        const { ingest } = s.clients(s.tenant.ingest);
        const res = await ingest.ingest(
          (async function* () {
            yield { events: [event("s1"), event("s2")] };
            yield { events: [event("s3"), event("s1")] };
          })(),
        );
        expect(res.summary).toMatchObject({ accepted: 3n, duplicates: 1n });
        expect(res.summary!.results.map((r) => [r.index, r.status])).toEqual([[3, EventStatus.DUPLICATE]]);
      });
  });
});
