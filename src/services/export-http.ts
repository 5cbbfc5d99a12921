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
// neutralised, see ExportEventsRequest.csv_keep_formulas); manifest=true|false
// (default false: NDJSON only, a last line with the file's signed manifest,
// see ExportEventsRequest.manifest and docs/HASH_CHAIN.md).
// Enum values by proto name or short name, any case (SEVERITY_WARNING,
// warning). The request is validated with the same rules as the RPC.
//
// Same auth as the RPC: `Authorization: Bearer <key or token>`, a key needs
// the `query` scope, the tenant is the key's (a token's: `x-auditlog-tenant`
// when it grants several), a User token exports only its own events. Errors
// found before the first byte of the file are answered as JSON {code,
// message} with the HTTP status of the Connect code (401, 403, 400, 429,
// 504, ...; 429 and 503 with Retry-After). The first chunk is produced
// before the status line is sent, so a failing backend still gets a proper
// error. An error after the first byte aborts the connection (HTTP/1.1: the
// chunked body never gets its final chunk; HTTP/2: RST_STREAM), so a client
// never mistakes a truncated file for a complete one.
//
// Writes respect backpressure: the next chunk is asked for only once the
// last one's write has completed (its callback), so a slow reader pauses the
// backend reads, and the export may read later pages into the memory of the
// chunks written (export-stream.ts, `consumedOnNext`). A client that
// disconnects aborts the export (and closes its point in time).
//
// The RPCs' limits apply (limits-interceptor.ts, docs/ARCHITECTURE.md,
// "Limits"), on the very instances the RPCs use, so that a caller has one
// budget whichever way it exports: a download spends one request of its
// tenant's and its own read rate (over it: 429 with Retry-After), counts as
// one of its caller's open streams from admission until the response ends,
// is aborted or fails (over the cap: 429), and ends when it has run for the
// streams' longest duration (before the first byte: 504; after it: the
// connection is aborted like any late error).
import { constants as h2 } from "node:http2";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { create, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Validator } from "@bufbuild/protovalidate";
import { ExportEventsRequestSchema, QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { authenticateRequest } from "../auth/authenticate.ts";
import type { Principal } from "../auth/principal.ts";
import type { TenantStatus } from "../auth/tenant-status.ts";
import { ExportRecordCounter } from "../domain/export-record-count.ts";
import type { AccessAudit } from "./access-audit.ts";
import { type DataProtection, viewOf } from "./data-protection.ts";
import type { Authenticator } from "../auth/authenticator.ts";
import { TENANT_HEADER } from "../auth/principal.ts";
import { ownActorOf, tenantOfPrincipal } from "./request-context.ts";
import type { SearchBackend } from "../search/backend.ts";
import type { SigningKey } from "../domain/signing.ts";
import type { Logger } from "../platform/log.ts";
import { connectErrorOf, withRetryInfo } from "./errors.ts";
import { limitSubjectOf } from "./limit-subject.ts";
import type { Limits } from "./limits-interceptor.ts";
import { StreamGuard } from "./stream-guard.ts";
import { badParam, requestFromParams } from "./export-params.ts";
import { boundedExportChunks, exportPlan } from "./export-stream.ts";
import { awaitPosition } from "./read-your-writes.ts";
import type { TenantReadLimiter } from "./tenant-read-limiter.ts";
import { requestViolation } from "../domain/request-check.ts";

export const EXPORT_PATH = "/v1/export";

/** HTTP/1.1 or the HTTP/2 compatibility API: what the server's listener hands over. */
type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

export type ExportHttpDeps = {
  auth: Authenticator;
  backend: SearchBackend;
  validator: Validator;
  log: Logger;
  limiter?: TenantReadLimiter;
  /** The RPCs' rate, open-stream and duration limits: the same instances as limitsInterceptor's, for one budget. */
  limits?: Limits;
  /** Records every export, refusals included (access-audit.ts); the file is complete only once its record is committed. */
  accessAudit?: AccessAudit;
  /** Refuses suspended tenants (authenticate.ts). */
  tenantStatus?: TenantStatus;
  /** Signs the manifest of `manifest=true` exports; none: those answer FAILED_PRECONDITION. */
  checkpointKey?: SigningKey | null;
  /** Decrypts protected content for the callers allowed to see it (as ExportEvents); none: records as stored. */
  protection?: Pick<DataProtection, "viewFor">;
};

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
  // A Connect error body, details included, so Connect clients' decoders read it too.
  const body = JSON.stringify(errorToJson(err, undefined));
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": String(Buffer.byteLength(body)),
  };
  if (err.code === Code.Unauthenticated) headers["www-authenticate"] = 'Bearer realm="auditlog"';
  if (err.code === Code.Unimplemented) headers["allow"] = "GET";
  // The RetryInfo's delay for HTTP clients and proxies, in whole seconds (rounded up: never too early).
  const [retry] = err.findDetails(RetryInfoSchema);
  if (retry?.retryDelay) headers["retry-after"] = String(Math.ceil(durationMs(retry.retryDelay) / 1000));
  plain(res).writeHead(err.code === Code.Unimplemented ? 405 : codeToHttpStatus(err.code), headers);
  plain(res).end(body);
}

/**
 * Writes `chunk` and resolves once the write has completed (the bytes are
 * handed to the socket: the chunk's memory is free again); rejects if the
 * write fails or the client goes away first.
 */
function written(res: NodeResponse, chunk: Buffer, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => {
      signal.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => done(signal.reason instanceof Error ? signal.reason : new Error("client went away"));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort);
    plain(res).write(chunk, done);
  });
}

function fileTimestamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z"); // 20261123T152716Z
}

/**
 * Handles GET /v1/export; resolves false (touching nothing) for any other
 * path, so it can sit in front of the Connect handler. Never rejects.
 */
export function exportHttpHandler(deps: ExportHttpDeps): (req: NodeRequest, res: NodeResponse) => Promise<boolean> {
  const { auth, backend, validator, log, limiter, limits, accessAudit, tenantStatus, checkpointKey, protection } = deps;
  const bounds = limits?.streamBounds ?? { maxDurationMs: 0, idleMs: 0 };
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
    // Aborts on the client's disconnect too; every piece of work below observes its signal.
    const guard = new StreamGuard(abort.signal, bounds, `this GET ${EXPORT_PATH} download`);
    let releaseStream = () => {};
    let tenantId: string | undefined;
    let format: string | undefined;
    let bytes = 0;
    let headersWritten = false;
    let known: { principal: Principal; tenantId: string } | null = null;
    const call = {
      service: QueryService.typeName,
      method: "ExportEvents",
      via: `GET ${EXPORT_PATH}`,
      request: null as string | null,
      client: { ip: "", userAgent: String(req.headers["user-agent"] ?? "") },
    };
    try {
      if (req.method !== "GET") throw new ConnectError(`${req.method} is not allowed on ${EXPORT_PATH}; use GET`, Code.Unimplemented);
      const tenantHeader = req.headers[TENANT_HEADER];
      const creds = { authorization: req.headers["authorization"] ?? null, tenant: typeof tenantHeader === "string" ? tenantHeader : null };
      const principal = await authenticateRequest(auth, creds, QueryService.typeName, "ExportEvents", tenantStatus);
      tenantId = tenantOfPrincipal(principal);
      known = { principal, tenantId };
      const subject = limitSubjectOf(principal);
      if (subject) {
        limits?.reads?.admit(subject, 1);
        releaseStream = limits?.streams?.acquire(subject.key) ?? releaseStream;
      }

      const request = create(ExportEventsRequestSchema, requestFromParams(url.searchParams));
      call.request = toJsonString(ExportEventsRequestSchema, request);
      // What the RPC's interceptor checks (src/server/request-check.ts), e.g. NUL characters.
      const violation = requestViolation(ExportEventsRequestSchema, request);
      if (violation) throw badParam(violation.field, violation.reason);
      const plan = exportPlan(validator, tenantId, request, ownActorOf(principal));
      format = plan.format;
      await awaitPosition(backend, tenantId, request.minPosition, guard.signal);

      const counter = new ExportRecordCounter(plan.format);
      const view = viewOf(protection, principal, tenantId);
      const chunks = boundedExportChunks(backend, plan, guard.signal, limiter, checkpointKey ?? null, view, { consumedOnNext: true });
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
          counter.add(next.value);
          await written(res, next.value, guard.signal);
          guard.signal.throwIfAborted();
          next = await chunks.next();
        }
      } finally {
        // Stops the backend (closes its point in time) if we leave early.
        await chunks.return(undefined);
      }
      // Before the end of the body: a file whose access is not on record is never complete (the catch aborts it).
      await accessAudit?.record({ ...call, principal: known.principal, tenantId, results: counter.records });
      // The work is done: the stream is free before the client sees the end, so it can start the next download at once.
      releaseStream();
      // 'close' as well: a client gone at the last moment must not leave us waiting for 'finish'.
      await new Promise<void>((resolve) => {
        res.once("close", resolve);
        plain(res).end(() => resolve());
      });
      log.info("export finished", { tenantId, format, bytes, durationMs: Math.round(performance.now() - started) });
    } catch (caught) {
      // Nothing runs any more (the chunks have returned): free the stream before answering, as on success.
      releaseStream();
      // A bound that ended the download says more than what the aborted work threw.
      const err = guard.explain(caught);
      await accessAudit?.recordFailure(call, err, known);
      // As the RPCs answer (errorsInterceptor): RESOURCE_EXHAUSTED and UNAVAILABLE always say when to retry.
      const ce = withRetryInfo(connectErrorOf(err) ?? ConnectError.from(err));
      if (abort.signal.aborted) {
        log.info("export aborted by the client", { tenantId, format, bytes });
        abortResponse(res);
      } else if (headersWritten || res.headersSent) {
        if (guard.tripped)
          log.warn("export reached its longest allowed duration after the first byte; connection aborted", { tenantId, format, bytes });
        else log.error("export failed after the first byte; connection aborted", { tenantId, format, bytes, err });
        abortResponse(res);
      } else {
        if (ce.code === Code.Internal || ce.code === Code.Unknown) log.error("export failed", { tenantId, format, err });
        else if (ce.code === Code.Unavailable) log.warn("export failed: storage unavailable", { tenantId, format, err: String(err) });
        sendError(res, ce.code === Code.Unknown ? new ConnectError("internal error", Code.Internal) : ce);
      }
    } finally {
      res.off("close", onClose);
      guard.dispose();
    }
    return true;
  };
}
