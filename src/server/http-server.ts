// The RPC server: Connect, gRPC and gRPC-Web on one port (cleartext, or TLS when configured), with
// CORS, gRPC health, gRPC reflection, an access log and GET /healthz.

import type { DescFile } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { accessLogInterceptor, accessLogStateKey, peerAddressKey, protocolOf } from "./access-log.ts";
import { withCors } from "./cors.ts";
import { mergeBinaryTwins } from "./binary-twin.ts";
import { remapConnectParseFailures, remapParseFailures } from "./parse-error-status.ts";
import { strictJsonDecoder } from "./strict-json.ts";
import { registerHealth, type HealthState } from "./health.ts";
import { listen, type NodeRequest, type NodeResponse } from "./listener.ts";
import type { Logger } from "../platform/log.ts";
import { registerReflection } from "./reflection.ts";
import type { Metrics } from "../platform/metrics.ts";
import { extractTraceContext, SpanKind, withSpan } from "../platform/tracing.ts";
import { serveMetrics } from "./metrics-endpoint.ts";
import { telemetryInterceptor } from "./telemetry.ts";
import { observedGate, type RequestGate } from "./request-gate.ts";
import { retryableError } from "../platform/error-details.ts";

export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

// Misspelled JSON fields are INVALID_ARGUMENT, not silently dropped.
// Zero values are written out (`"index": 0`, `"accepted": "0"`): curl users read these answers.
const JSON_OPTIONS = { ignoreUnknownFields: false, alwaysEmitImplicit: true };

// Never compress a message: Connect compresses those of at least this many bytes.
const NEVER_COMPRESS = { compressMinBytes: Number.MAX_SAFE_INTEGER };

/**
 * The router the application registers its services on: each method is
 * registered on its own, with a JSON text decoder that refuses impossible
 * calendar dates in its request type's Timestamps (src/server/strict-json.ts),
 * and, for the methods in `uncompressed`, responses that are never compressed.
 */
function strictJsonRouter(router: ConnectRouter, jsonOptions: typeof JSON_OPTIONS, uncompressed: ReadonlySet<string>): ConnectRouter {
  const extra = (method: { parent: { typeName: string }; name: string }) =>
    uncompressed.has(`${method.parent.typeName}/${method.name}`) ? NEVER_COMPRESS : {};
  const strict: ConnectRouter = {
    handlers: router.handlers,
    service(service, implementation, options) {
      const impl = implementation as Record<string, unknown>;
      for (const method of service.methods) {
        const fn = impl[method.localName];
        const handler =
          typeof fn === "function"
            ? fn.bind(implementation)
            : () => {
                throw new ConnectError(`${service.typeName}.${method.name} is not implemented`, Code.Unimplemented);
              };
        const json = { ...jsonOptions, ...options?.jsonOptions, textDecoder: strictJsonDecoder(method.input) };
        router.rpc(method as never, handler as never, { ...options, ...extra(method), jsonOptions: json });
      }
      return strict;
    },
    rpc(method, implementation, options) {
      const json = { ...jsonOptions, ...options?.jsonOptions, textDecoder: strictJsonDecoder(method.input) };
      router.rpc(method, implementation, { ...options, ...extra(method), jsonOptions: json });
      return strict;
    },
  };
  return strict;
}

export interface HttpServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /**
   * Registers the application's services. Reflection is derived from what is
   * registered here (each service's file and its imports); health and
   * reflection are added by the server.
   */
  routes: (router: ConnectRouter) => void;
  /**
   * Interceptors for the application's routes, run inside the access log
   * that the server always adds as the outermost interceptor (first =
   * outermost; listing accessLogInterceptor here again is harmless, a call
   * is logged once). Health and reflection get only the access log, so e.g.
   * an auth interceptor does not break health probes.
   */
  interceptors?: Interceptor[];
  /**
   * Methods ("package.Service/Method") whose responses are never compressed,
   * whatever the client accepts (compressed requests are still accepted).
   * For fan-out streams: each response is compressed per call, so N
   * subscribers of the same events would compress the same bytes N times.
   */
  uncompressedResponses?: readonly string[];
  /**
   * Runs after a call's headers and before its body is read, for every RPC
   * (src/server/request-gate.ts): a ConnectError it throws is the answer,
   * in the call's protocol, and the body is never parsed. Refusals are
   * counted in the metrics and the access log like any call.
   */
  requestGate?: RequestGate;
  /**
   * Interceptors that see every RPC's outcome, the gate's refusals included,
   * inside telemetry and the access log and outside `interceptors` (the
   * refusal tarpit, src/server/refusal-tarpit.ts).
   */
  observers?: Interceptor[];
  /** Extra context values per request (peer address is always set). */
  contextValues?: (req: NodeRequest) => ContextValues;
  /** Browser origins allowed by CORS; "*" for any, [] for none. */
  allowedOrigins: string[];
  health: HealthState;
  /**
   * Plain HTTP endpoints beside the RPCs (e.g. a file download). Called for
   * requests no RPC matched; resolves true when it answered the request.
   */
  httpRoutes?: (req: NodeRequest, res: NodeResponse) => Promise<boolean>;
  /** Max size of one request message, after decompression (default 8 MiB). */
  maxMessageBytes?: number;
  /**
   * RPC metrics are recorded in it; unless `metricsEndpoint` is false, it is
   * served at GET /metrics (with `metricsToken`, only to
   * `Authorization: Bearer <token>`).
   */
  metrics?: Metrics;
  metricsEndpoint?: boolean;
  metricsToken?: string | null;
  /** Connection timeouts (src/server/listener.ts, ListenOptions). */
  headersTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** PEM certificate chain and key: TLS only on the port, HTTP/2 and HTTP/1.1 by ALPN (src/server/listener.ts). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  log: Logger;
}

export interface HttpServer {
  readonly port: number;
  /** e.g. "http://127.0.0.1:8080", "https://…" with TLS (a wildcard host is shown as loopback). */
  readonly url: string;
  /**
   * Graceful stop: health goes NOT_SERVING (Watch streams end), the port
   * stops accepting, HTTP/2 sessions get GOAWAY, idle HTTP/1.1 connections
   * are closed, in-flight calls get up to graceMs; what is left is destroyed.
   */
  close(graceMs: number): Promise<void>;
}

function urlHost(host: string): string {
  if (host === "" || host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

function peerOf(req: NodeRequest): string | undefined {
  const { remoteAddress, remotePort } = req.socket;
  if (remoteAddress === undefined) return undefined;
  return remoteAddress.includes(":") ? `[${remoteAddress}]:${remotePort}` : `${remoteAddress}:${remotePort}`;
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const { health, log } = opts;
  const shutdown = new AbortController();
  const rpcPaths = new Set<string>();
  const logStates = new WeakMap<NodeRequest, { logged: boolean }>();

  const accessLog = accessLogInterceptor(log);
  const telemetry = telemetryInterceptor(opts.metrics);
  const adapter = connectNodeAdapter({
    grpc: true,
    grpcWeb: true,
    connect: true,
    readMaxBytes: opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    // Misspelled JSON fields are INVALID_ARGUMENT, not silently dropped.
    // Zero values are written out (`"index": 0`, `"accepted": "0"`): curl users read these answers.
    jsonOptions: JSON_OPTIONS,
    // Telemetry outermost: the access log line is written inside the call's span (its traceId).
    interceptors: [telemetry, accessLog, ...(opts.observers ?? []), ...(opts.interceptors ?? [])],
    requestGate: opts.requestGate && observedGate(opts.requestGate, [telemetry, accessLog, ...(opts.observers ?? [])]),
    shutdownSignal: shutdown.signal,
    contextValues(req) {
      const values = opts.contextValues?.(req) ?? createContextValues();
      values.set(peerAddressKey, peerOf(req));
      values.set(accessLogStateKey, logStates.get(req));
      return values;
    },
    routes(router) {
      opts.routes(strictJsonRouter(router, JSON_OPTIONS, new Set(opts.uncompressedResponses)));
      mergeBinaryTwins(router.handlers);
      const files = new Map<string, DescFile>();
      for (const h of router.handlers) files.set(h.service.file.proto.name, h.service.file);
      // Infrastructure endpoints: access log only, no app interceptors.
      const infra = { interceptors: [accessLog] };
      registerHealth(router, health, infra);
      registerReflection(router, [...files.values()], infra);
      for (let i = 0; i < router.handlers.length; i++) router.handlers[i] = remapConnectParseFailures(router.handlers[i]!);
      for (const h of router.handlers) rpcPaths.add(h.requestPath);
    },
    fallback(req, res) {
      const path = req.url?.split("?", 1)[0];
      if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
        const status = health.get("") === "SERVING" ? "SERVING" : "NOT_SERVING";
        // The HTTP status follows the whole server only: a service that is
        // down for a reason of its own (search while indexing is stuck) must
        // not take the replica out of a load balancer, ingest included.
        const degraded: Record<string, string> = {};
        for (const [service, s] of health.all()) {
          if (service !== "" && s === "NOT_SERVING") degraded[service] = health.reason(service) ?? "not serving";
        }
        const warnings = [...health.warnings().values()];
        const body = JSON.stringify({
          status,
          ...(Object.keys(degraded).length ? { degraded } : {}),
          ...(warnings.length ? { warnings } : {}),
        });
        res.writeHead(status === "SERVING" ? 200 : 503, {
          "content-type": "application/json",
          "cache-control": "no-store",
          "content-length": String(Buffer.byteLength(body)),
        });
        if (req.method === "HEAD") res.end();
        else res.end(body);
        return;
      }
      if (path === "/metrics" && opts.metrics) {
        // Reserved even when switched off, so that no other route answers it.
        if (opts.metricsEndpoint !== false && (req.method === "GET" || req.method === "HEAD")) {
          serveMetrics(req as NodeRequest, res as unknown as NodeResponse, opts.metrics, opts.metricsToken ?? null, log);
        } else {
          res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
          res.end("not found\n");
        }
        return;
      }
      const notFound = () => {
        res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
        res.end("not found\n");
      };
      if (!opts.httpRoutes) return notFound();
      const routes = opts.httpRoutes;
      const header = (name: string) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      // Plain HTTP routes (GET /v1/export) continue the caller's trace like RPCs.
      withSpan(`HTTP ${req.method}`, () => routes(req as NodeRequest, res as unknown as NodeResponse), {
        kind: SpanKind.SERVER,
        parent: extractTraceContext(header),
        attributes: { "url.path": path ?? "" },
      }).then(
        (handled) => handled || notFound(),
        (err: unknown) => {
          log.error("http route failed", { path, err: String(err) });
          if (!res.headersSent) {
            res.writeHead(500, { "content-type": "application/json" });
            res.end(JSON.stringify({ code: "internal", message: "internal error" }));
          } else {
            res.destroy();
          }
        },
      );
    },
  });

  const corsHandler = withCors(adapter, { allowedOrigins: opts.allowedOrigins });

  function handler(req: NodeRequest, res: NodeResponse): void {
    const path = req.url?.split("?", 1)[0] ?? "";
    if (req.method !== "OPTIONS" && rpcPaths.has(path)) {
      // Calls rejected before the interceptor chain (unparsable or oversized
      // unary requests, bad content types) would otherwise leave
      // no trace: log those here.
      const state = { logged: false };
      logStates.set(req, state);
      const start = performance.now();
      const peer = peerOf(req);
      let grpcStatus: string | undefined;
      const addTrailers = res.addTrailers;
      res.addTrailers = function (this: NodeResponse, headers: Parameters<NodeResponse["addTrailers"]>[0]) {
        const s = (headers as Record<string, unknown>)["grpc-status"];
        if (s !== undefined) grpcStatus = String(s);
        return addTrailers.call(this, headers as never);
      } as NodeResponse["addTrailers"];
      // Inside the logging wrapper, so the log shows the status the client gets.
      remapParseFailures(req, res);
      res.once("close", () => {
        if (state.logged) return;
        // gRPC carries the status in trailers (or headers when trailers-only);
        // gRPC-Web in the body, which is not parsed here.
        const status = grpcStatus ?? res.getHeader("grpc-status");
        log.info("rpc rejected", {
          procedure: path,
          protocol: protocolOf(req.headers["content-type"]),
          httpStatus: res.statusCode,
          code: status === undefined ? undefined : Number(status) === 0 ? "ok" : codeToString(Number(status)),
          durationMs: Math.round((performance.now() - start) * 10) / 10,
          peer,
        });
      });
    }
    corsHandler(req, res);
  }

  const listener = await listen({
    host: opts.host,
    port: opts.port,
    handler,
    log,
    headersTimeoutMs: opts.headersTimeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs,
    tls: opts.tls,
  });
  const url = `${opts.tls ? "https" : "http"}://${urlHost(opts.host)}:${listener.port}`;
  log.info("server listening", { url, host: opts.host, port: listener.port });

  let closing: Promise<void> | undefined;
  async function close(graceMs: number): Promise<void> {
    log.info("server shutting down", { graceMs });
    health.shutdown();
    // Give handlers that watch ctx.signal a moment to wrap up before the
    // remaining connections are destroyed.
    const abortAfter = Math.max(0, graceMs - Math.min(1000, graceMs / 4));
    // Another replica (or this one restarted) takes the retry.
    const reason = retryableError("server is shutting down", Code.Unavailable, 1_000);
    const timer = setTimeout(() => shutdown.abort(reason), abortAfter);
    try {
      await listener.close(graceMs);
    } finally {
      clearTimeout(timer);
      if (!shutdown.signal.aborted) shutdown.abort(reason);
    }
    log.info("server stopped");
  }

  return {
    port: listener.port,
    url,
    close(graceMs: number) {
      closing ??= close(graceMs);
      return closing;
    },
  };
}
