// Per-RPC telemetry: a server span continuing the caller's W3C trace
// (`traceparent` arrives as an HTTP header on every protocol: gRPC metadata
// is HTTP/2 headers), and the request counter and duration histogram. The
// span is the active context while the call runs, so the spans of the layers
// below (authentication, validation, commit, search) and the log lines
// (their `traceId`) belong to it. Runs outermost, before the access log.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Metrics } from "../platform/metrics.ts";
import { observeOutcome } from "./call-outcome.ts";
import { contextWithSpan, endSpanWithError, extractTraceContext, inContext, type Span, SpanKind, tracer } from "../platform/tracing.ts";

function codeOf(err: unknown, signal: AbortSignal): string {
  if (err === undefined) return "ok";
  if (err instanceof ConnectError) return codeToString(err.code);
  return codeToString(signal.aborted ? ConnectError.from(signal.reason).code : Code.Internal);
}

export function telemetryInterceptor(metrics: Metrics | undefined): Interceptor {
  return (next) => async (req) => {
    const start = performance.now();
    const service = req.service.typeName;
    const method = req.method.name;
    const parent = extractTraceContext((name) => req.header.get(name));
    const span: Span = tracer.startSpan(
      `${service}/${method}`,
      { kind: SpanKind.SERVER, attributes: { "rpc.system": "connect_rpc", "rpc.service": service, "rpc.method": method } },
      parent,
    );
    const done = (err: unknown) => {
      const code = codeOf(err, req.signal);
      metrics?.observeRpc(service, method, code, (performance.now() - start) / 1000);
      span.setAttribute("rpc.connect_rpc.error_code", code);
      if (err === undefined) span.end();
      else endSpanWithError(span, err);
    };
    const ctx = contextWithSpan(parent, span);
    return observeOutcome(req, () => inContext(ctx, () => next(req)), done);
  };
}
