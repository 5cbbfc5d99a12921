// Access log: one line per RPC with procedure, status code, duration and peer.
// Errors are logged and re-thrown unchanged.

import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { LogFields, Logger } from "../platform/log.ts";
import { observeOutcome } from "./call-outcome.ts";

/** Remote address of the connection ("ip:port"); set by startHttpServer. */
export const peerAddressKey = createContextKey<string | undefined>(undefined, { description: "peer address" });

/**
 * Per-request marker set by startHttpServer: the interceptor flags calls it
 * has logged, so the HTTP layer can log the ones rejected before the
 * interceptor chain runs (e.g. unparsable unary requests).
 */
export const accessLogStateKey = createContextKey<{ logged: boolean } | undefined>(undefined, {
  description: "access log state",
});

/** "grpc" | "grpc-web" | "connect", from the request's content type. */
export function protocolOf(contentType: string | null | undefined): string {
  const ct = (contentType ?? "").toLowerCase();
  if (ct.startsWith("application/grpc-web")) return "grpc-web";
  if (ct.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** error for server faults, warn for overload/timeouts, info otherwise. */
export function levelFor(code: Code | undefined): "info" | "warn" | "error" {
  switch (code) {
    case Code.Internal:
    case Code.Unknown:
    case Code.DataLoss:
      return "error";
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
      return "warn";
    default:
      return "info";
  }
}

export function accessLogInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const state = req.contextValues.get(accessLogStateKey);
    if (state !== undefined) {
      // Another access log interceptor further out already covers this call.
      if (state.logged) return next(req);
      state.logged = true;
    }
    const start = performance.now();
    const base: LogFields = {
      procedure: `/${req.service.typeName}/${req.method.name}`,
      protocol: protocolOf(req.header.get("content-type")),
    };
    const peer = req.contextValues.get(peerAddressKey);
    if (peer !== undefined) base.peer = peer;

    const done = (err: unknown) => {
      const durationMs = Math.round((performance.now() - start) * 10) / 10;
      if (err === undefined && req.signal.aborted) {
        // The implementation finished, but the client had already gone away
        // or its deadline passed: it did not get this response.
        const reason = ConnectError.from(req.signal.reason);
        if (reason.code === Code.Canceled || reason.code === Code.DeadlineExceeded) err = reason;
      }
      if (err === undefined) {
        log.info("rpc", { ...base, code: "ok", durationMs });
        return;
      }
      // A plain error while the call was already aborted (e.g. "Premature
      // close" from a request stream cut by the client or by shutdown) is
      // reported with the abort's code; the error itself is kept as cause.
      // Any other plain error is what Connect answers as "internal error".
      const ce =
        err instanceof ConnectError
          ? err
          : req.signal.aborted
            ? ConnectError.from(req.signal.reason)
            : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
      const fields: LogFields = { ...base, code: codeToString(ce.code), durationMs, error: ce.rawMessage };
      const level = levelFor(ce.code);
      // Keep the original error (stack, pg/ES details) for server faults and
      // anything that was not a ConnectError.
      if (level === "error" || !(err instanceof ConnectError)) fields.cause = ce.cause ?? err;
      log[level]("rpc", fields);
    };

    return observeOutcome(req, () => next(req), done);
  };
}
