// GET /v1/export: the ExportEvents file as a plain HTTP download, for curl,
// browsers behind a proxy that adds the key, and scripts without a gRPC client.
//
//   curl -fOJ -H "Authorization: Bearer $KEY" \
//     'http://host:8080/v1/export?format=csv&order=asc&action=customer.*&occurred_after=2026-01-01T00:00:00Z'
//
// Parameters: format=ndjson|csv (default ndjson), order=desc|asc (default
// desc), limit, min_position, and one parameter per EventFilter field, named
// by the field in the singular (repeat it for several values): id, action,
// actor_id, actor_type, actor_ip, session_id, target_type, target_id,
// outcome, severity, request_id, trace_id, source, location; once each:
// min_severity, occurred_after, occurred_before (RFC 3339), text, query;
// metadata.<key>=<value> (repeatable; an empty value: the key is present);
// csv_keep_formulas=true|false (default false: formula-leading CSV cells are
// neutralised, see ExportEventsRequest.csv_keep_formulas).
// Enum values by proto name or short name, any case (SEVERITY_WARNING,
// warning). The request is validated with the same rules as the RPC.
//
// Same auth as the RPC: `Authorization: Bearer <key>`, the key needs the
// `query` scope, the tenant is the key's. Errors found before the first byte
// of the file are answered as JSON {code, message} with the HTTP status of
// the Connect code (401, 403, 400, 504, ...). The first chunk is produced
// before the status line is sent, so a failing backend still gets a proper
// error. An error after the first byte aborts the connection (HTTP/1.1: the
// chunked body never gets its final chunk; HTTP/2: RST_STREAM), so a client
// never mistakes a truncated file for a complete one.
//
// Writes respect backpressure: after res.write() returns false the export
// waits for 'drain', so a slow reader pauses the backend reads. A client that
// disconnects aborts the export (and closes its point in time).
import { constants as h2 } from "node:http2";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { Validator } from "@bufbuild/protovalidate";
import { ActorType, Outcome, Severity } from "../../gen/auditlog/v1/event_pb.js";
import { type EventFilterSchema, ExportEventsRequestSchema, ExportFormat, SortOrder } from "../../gen/auditlog/v1/query_pb.js";
import { authorize, bearerToken } from "../auth/auth-interceptor.ts";
import type { Authenticator } from "../auth/authenticator.ts";
import type { SearchBackend } from "../search/backend.ts";
import type { NodeRequest, NodeResponse } from "../server/listener.ts";
import type { Logger } from "../platform/log.ts";
import { awaitPosition, boundedExportChunks, exportPlan } from "./export-service.ts";
import type { TenantReadLimiter } from "./tenant-read-limiter.ts";
import { requestViolation } from "../domain/request-check.ts";
import { RFC3339_HINT, timestampFromRfc3339 } from "../domain/timestamp.ts";

export const EXPORT_PATH = "/v1/export";

export type ExportHttpDeps = { auth: Authenticator; backend: SearchBackend; validator: Validator; log: Logger; limiter?: TenantReadLimiter };

type FilterInit = MessageInitShape<typeof EventFilterSchema>;
type RequestInit = MessageInitShape<typeof ExportEventsRequestSchema>;

const REPEATED_STRINGS = {
  id: "ids",
  action: "actions",
  actor_id: "actorIds",
  actor_ip: "actorIps",
  session_id: "sessionIds",
  target_type: "targetTypes",
  target_id: "targetIds",
  request_id: "requestIds",
  trace_id: "traceIds",
  source: "sources",
  location: "locations",
} as const satisfies Record<string, keyof FilterInit>;

type EnumSpec = { values: Record<string, string | number>; prefix: string };
const ACTOR_TYPE: EnumSpec = { values: ActorType, prefix: "ACTOR_TYPE_" };
const OUTCOME: EnumSpec = { values: Outcome, prefix: "OUTCOME_" };
const SEVERITY: EnumSpec = { values: Severity, prefix: "SEVERITY_" };

const REPEATED_ENUMS = {
  actor_type: ["actorTypes", ACTOR_TYPE],
  outcome: ["outcomes", OUTCOME],
  severity: ["severities", SEVERITY],
} as const satisfies Record<string, readonly [keyof FilterInit, EnumSpec]>;

const SINGLES = new Set([
  "format",
  "order",
  "limit",
  "min_position",
  "min_severity",
  "occurred_after",
  "occurred_before",
  "text",
  "query",
  "csv_keep_formulas",
]);

const KNOWN_TEXT = [...SINGLES, ...Object.keys(REPEATED_STRINGS), ...Object.keys(REPEATED_ENUMS), "metadata.<key>"].join(", ");

function badParam(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function enumValue(param: string, spec: EnumSpec, raw: string): number {
  const up = raw.trim().toUpperCase();
  const name = up.startsWith(spec.prefix) ? up.slice(spec.prefix.length) : up;
  const v = Object.hasOwn(spec.values, name) ? spec.values[name] : undefined;
  if (typeof v !== "number") {
    const names = Object.keys(spec.values).filter((k) => typeof spec.values[k] === "number");
    throw badParam(`${param}: unknown value ${JSON.stringify(raw)} (one of ${names.map((n) => spec.prefix + n).join(", ")})`);
  }
  return v;
}

function uint64(param: string, raw: string): bigint {
  if (!/^\d{1,20}$/.test(raw) || BigInt(raw) > 0xffff_ffff_ffff_ffffn) throw badParam(`${param}: not a non-negative integer: ${JSON.stringify(raw)}`);
  return BigInt(raw);
}

function timestamp(param: string, raw: string) {
  // Strict: fromJson would move an impossible date (2026-02-30) to another day.
  const ts = timestampFromRfc3339(raw);
  if (!ts) throw badParam(`${param}: ${RFC3339_HINT}, not ${JSON.stringify(raw)}`);
  return create(TimestampSchema, ts);
}

/** The query parameters as an ExportEventsRequest (not yet validated against the contract). */
export function requestFromParams(params: URLSearchParams): RequestInit {
  const filter: FilterInit = {};
  const req: RequestInit = { filter };
  const seen = new Set<string>();
  const metadata = new Map<string, string[]>();
  for (const [name, raw] of params) {
    if (name.startsWith("metadata.")) {
      const key = name.slice("metadata.".length);
      const values = metadata.get(key) ?? [];
      if (raw !== "") values.push(raw);
      metadata.set(key, values);
      continue;
    }
    if (Object.hasOwn(REPEATED_STRINGS, name)) {
      const field = REPEATED_STRINGS[name as keyof typeof REPEATED_STRINGS];
      ((filter[field] ??= []) as string[]).push(raw);
      continue;
    }
    if (Object.hasOwn(REPEATED_ENUMS, name)) {
      const [field, spec] = REPEATED_ENUMS[name as keyof typeof REPEATED_ENUMS];
      ((filter[field] ??= []) as number[]).push(enumValue(name, spec, raw));
      continue;
    }
    if (!SINGLES.has(name)) throw badParam(`unknown parameter ${JSON.stringify(name)} (known: ${KNOWN_TEXT})`);
    if (seen.has(name)) throw badParam(`${name}: given more than once`);
    seen.add(name);
    switch (name) {
      case "format": {
        const f = raw.toLowerCase();
        if (f !== "csv" && f !== "ndjson") throw badParam(`format: must be csv or ndjson, not ${JSON.stringify(raw)}`);
        req.format = f === "csv" ? ExportFormat.CSV : ExportFormat.NDJSON;
        break;
      }
      case "order": {
        const o = raw.toLowerCase();
        if (o !== "asc" && o !== "desc") throw badParam(`order: must be asc or desc, not ${JSON.stringify(raw)}`);
        req.order = o === "asc" ? SortOrder.ASCENDING : SortOrder.DESCENDING;
        break;
      }
      case "limit":
        req.limit = uint64(name, raw);
        break;
      case "min_position":
        req.minPosition = uint64(name, raw);
        break;
      case "min_severity":
        filter.minSeverity = enumValue(name, SEVERITY, raw);
        break;
      case "occurred_after":
        filter.occurredAfter = timestamp(name, raw);
        break;
      case "occurred_before":
        filter.occurredBefore = timestamp(name, raw);
        break;
      case "text":
        filter.text = raw;
        break;
      case "query":
        filter.query = raw;
        break;
      case "csv_keep_formulas": {
        const b = raw.toLowerCase();
        if (b !== "true" && b !== "false") throw badParam(`csv_keep_formulas: must be true or false, not ${JSON.stringify(raw)}`);
        req.csvKeepFormulas = b === "true";
        break;
      }
    }
  }
  filter.metadata = [...metadata].map(([key, values]) => ({ key, values }));
  return req;
}

/** The calls used here have the same shape on HTTP/1.1 and on the HTTP/2 compatibility response. */
function plain(res: NodeResponse): http.ServerResponse {
  return res as http.ServerResponse;
}

function isHttp2(res: NodeResponse): res is http2.Http2ServerResponse {
  return "stream" in res;
}

/** Ends the response abnormally: the client sees a broken transfer, never a complete file. */
function abortResponse(res: NodeResponse): void {
  if (isHttp2(res)) {
    if (!res.stream.destroyed) res.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
  } else {
    res.destroy();
  }
}

function sendError(res: NodeResponse, err: ConnectError): void {
  const body = JSON.stringify({ code: codeToString(err.code), message: err.rawMessage });
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": String(Buffer.byteLength(body)),
  };
  if (err.code === Code.Unauthenticated) headers["www-authenticate"] = 'Bearer realm="auditlog"';
  if (err.code === Code.Unimplemented) headers["allow"] = "GET";
  plain(res).writeHead(err.code === Code.Unimplemented ? 405 : codeToHttpStatus(err.code), headers);
  plain(res).end(body);
}

/** Resolves once the response can take more data; rejects if the client goes away first. */
function drained(res: NodeResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      res.off("drain", onDrain);
      signal.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onAbort = () => done(signal.reason instanceof Error ? signal.reason : new Error("client went away"));
    if (signal.aborted) return onAbort();
    res.on("drain", onDrain);
    signal.addEventListener("abort", onAbort);
  });
}

function fileTimestamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z"); // 20261123T152716Z
}

/**
 * Handles GET /v1/export; resolves false (touching nothing) for any other
 * path, so it can sit in front of the Connect handler. Never rejects.
 */
export function exportHttpHandler(deps: ExportHttpDeps): (req: NodeRequest, res: NodeResponse) => Promise<boolean> {
  const { auth, backend, validator, log, limiter } = deps;
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== EXPORT_PATH) return false;
    const started = performance.now();
    // Aborted when the client disconnects before the file is complete.
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort(new ConnectError("client closed the connection", Code.Canceled));
    };
    res.once("close", onClose);
    let tenantId: string | undefined;
    let format: string | undefined;
    let bytes = 0;
    let headersWritten = false;
    try {
      if (req.method !== "GET") throw new ConnectError(`${req.method} is not allowed on ${EXPORT_PATH}; use GET`, Code.Unimplemented);
      const token = bearerToken(req.headers["authorization"] ?? null);
      if (!token) throw new ConnectError('missing "Authorization: Bearer <api key>" header', Code.Unauthenticated);
      const principal = await auth.authenticate(token);
      if (!principal) throw new ConnectError("invalid, expired or revoked API key", Code.Unauthenticated);
      authorize(principal, "auditlog.v1.QueryService");
      if (principal.kind !== "key") throw new ConnectError("this call needs a tenant API key", Code.PermissionDenied);
      tenantId = principal.tenantId;

      const request = create(ExportEventsRequestSchema, requestFromParams(url.searchParams));
      // What the RPC's interceptor checks (src/server/request-check.ts), e.g. NUL characters.
      const violation = requestViolation(ExportEventsRequestSchema, request);
      if (violation) throw badParam(`${violation.field}: ${violation.reason}`);
      const plan = exportPlan(validator, tenantId, request);
      format = plan.format;
      await awaitPosition(backend, tenantId, request.minPosition);

      const chunks = boundedExportChunks(backend, plan, abort.signal, limiter);
      try {
        // The first chunk before the status line: errors up to here are still JSON.
        let next = await chunks.next();
        const filename = `auditlog-${tenantId.replace(/[^A-Za-z0-9._-]/g, "_")}-${fileTimestamp(new Date())}.${plan.format}`;
        plain(res).writeHead(200, {
          "content-type": plan.format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson",
          "content-disposition": `attachment; filename="${filename}"`,
          "cache-control": "no-store",
          "x-content-type-options": "nosniff",
        });
        headersWritten = true;
        while (!next.done) {
          bytes += next.value.length;
          if (!plain(res).write(next.value)) await drained(res, abort.signal);
          abort.signal.throwIfAborted();
          next = await chunks.next();
        }
      } finally {
        // Stops the backend (closes its point in time) if we leave early.
        await chunks.return(undefined);
      }
      // 'close' as well: a client gone at the last moment must not leave us waiting for 'finish'.
      await new Promise<void>((resolve) => {
        res.once("close", resolve);
        plain(res).end(() => resolve());
      });
      log.info("export finished", { tenantId, format, bytes, durationMs: Math.round(performance.now() - started) });
    } catch (err) {
      const ce = ConnectError.from(err);
      if (abort.signal.aborted) {
        log.info("export aborted by the client", { tenantId, format, bytes });
        abortResponse(res);
      } else if (headersWritten || res.headersSent) {
        log.error("export failed after the first byte; connection aborted", { tenantId, format, bytes, err });
        abortResponse(res);
      } else {
        if (ce.code === Code.Internal || ce.code === Code.Unknown) log.error("export failed", { tenantId, format, err });
        sendError(res, ce.code === Code.Unknown ? new ConnectError("internal error", Code.Internal) : ce);
      }
    } finally {
      res.off("close", onClose);
    }
    return true;
  };
}
