// Limits every RPC passes after authentication (docs/ARCHITECTURE.md,
// "Limits"): each QueryService call spends one request of its tenant's and
// its caller's read rate; Ingest and ExportEvents streams count against
// their caller's open streams and end when they run too long or, for Ingest,
// wait too long for a message. The ingest rate counts events, so the Ingest
// handlers apply it themselves (ingest-service.ts).
import type { Interceptor, StreamResponse, UnaryResponse } from "@connectrpc/connect";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { principalKey } from "../auth/principal.ts";
import { limitSubjectOf } from "./limit-subject.ts";
import type { RateLimiter } from "./rate-limiter.ts";
import { type StreamBounds, StreamGuard } from "./stream-guard.ts";
import type { StreamLimiter } from "./stream-limits.ts";

export type Limits = {
  /** Requests per second of QueryService calls. */
  reads?: RateLimiter;
  /** Open Ingest and ExportEvents streams per caller. */
  streams?: StreamLimiter;
  /** Duration and idle bounds of those streams. */
  streamBounds?: StreamBounds;
};

/** Services whose streams are limited (grpc.health.v1.Health's Watch is not). */
const LIMITED_SERVICES: ReadonlySet<string> = new Set([IngestService.typeName, QueryService.typeName]);

async function* released<T>(messages: AsyncIterable<T>, guard: StreamGuard, release: () => void): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw guard.explain(err);
  } finally {
    release();
    guard.dispose();
  }
}

export function limitsInterceptor(limits: Limits): Interceptor {
  const bounds = limits.streamBounds ?? { maxDurationMs: 0, idleMs: 0 };
  return (next) => async (req) => {
    const subject = limitSubjectOf(req.contextValues.get(principalKey));
    if (!subject || !LIMITED_SERVICES.has(req.service.typeName)) return next(req);
    if (req.service.typeName === QueryService.typeName) limits.reads?.admit(subject, 1);
    if (!req.stream) return next(req);
    const release = limits.streams?.acquire(subject.key) ?? (() => {});
    const clientStream = req.method.methodKind === "client_streaming";
    const guard = new StreamGuard(req.signal, bounds, `this ${req.method.name} stream`);
    let res: StreamResponse | UnaryResponse;
    try {
      res = await next({ ...req, signal: guard.signal, message: clientStream ? guard.watch(req.message) : req.message });
    } catch (err) {
      release();
      guard.dispose();
      throw guard.explain(err);
    }
    if (clientStream || !res.stream) {
      // The handler has finished: its one response message is ready.
      release();
      guard.dispose();
      return res;
    }
    return { ...res, message: released(res.message, guard, release) };
  };
}
