// A gate the application may put before the request body: connect-node runs
// it once the request headers are in and before any message is received,
// decompressed or parsed (@connectrpc/connect's `requestGate`), and answers
// the error it throws in the request's own protocol (Connect JSON error body
// and HTTP status, gRPC and gRPC-Web trailers with grpc-status-details-bin)
// without reading the body. Used to refuse an Append over its ingest rate
// for the price of its headers (src/services/ingest-rate-gate.ts).
//
// The interceptors never run for a call the gate refuses, so the refusal is
// shown to the observing ones (telemetry: span, request counter and
// duration; the access log) as a call that failed with that error: metrics
// and the access log count it like any other call.
import type { HandlerContext, Interceptor, UnaryRequest } from "@connectrpc/connect";

export type RequestGate = (ctx: HandlerContext) => void | Promise<void>;

type Call = (req: UnaryRequest) => Promise<never>;

/** The request the interceptors would have seen, without its message (the gate never reads it). */
function requestOf(ctx: HandlerContext): UnaryRequest {
  return {
    stream: false,
    service: ctx.service,
    method: ctx.method,
    requestMethod: ctx.requestMethod,
    url: ctx.url,
    signal: ctx.signal,
    header: ctx.requestHeader,
    contextValues: ctx.values,
  } as UnaryRequest;
}

/** `gate`, with each refusal passed through `observers` (first = outermost) as the outcome of the call. */
export function observedGate(gate: RequestGate, observers: readonly Interceptor[]): RequestGate {
  return async (ctx) => {
    try {
      await gate(ctx);
    } catch (err) {
      const refuse: Call = async () => {
        throw err;
      };
      const call = observers.reduceRight<Call>((next, observe) => observe(next as never) as Call, refuse);
      await call(requestOf(ctx));
    }
  };
}
