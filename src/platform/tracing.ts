// Tracing through the OpenTelemetry API only. Without a registered provider
// (src/platform/tracing-sdk.ts, started by serve.ts when an OTLP endpoint is
// configured) every call here is the API's no-op: no span objects, no
// context propagation, so tracing costs nothing when it is off.
import {
  type Attributes,
  context,
  type Context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

export { SpanKind };
export type { Context, Link, Span };

export const tracer = trace.getTracer("auditlog");

/** Reads W3C `traceparent`/`tracestate` from any header bag (Fetch Headers, gRPC metadata as headers, Node's IncomingHttpHeaders). */
export function extractTraceContext(get: (name: string) => string | null | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, null, {
    keys: () => ["traceparent", "tracestate"],
    get: (_carrier, key) => get(key) ?? undefined,
  });
}

/** Records an error on a span (status ERROR, exception event) and ends it. */
export function endSpanWithError(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}

/**
 * Runs `fn` inside a child span of the active context; the span ends when
 * `fn` settles and records its error.
 */
export function withSpan<T>(
  name: string,
  fn: (span: Span) => Promise<T>,
  opts: { kind?: SpanKind; parent?: Context; links?: Link[]; root?: boolean; attributes?: Attributes } = {},
): Promise<T> {
  const parent = opts.parent ?? context.active();
  return tracer.startActiveSpan(
    name,
    { kind: opts.kind, links: opts.links, root: opts.root, attributes: opts.attributes },
    parent,
    async (span) => {
      try {
        const result = await fn(span);
        span.end();
        return result;
      } catch (err) {
        endSpanWithError(span, err);
        throw err;
      }
    },
  );
}

/** `parent` with `span` as its active span. */
export function contextWithSpan(parent: Context, span: Span): Context {
  return trace.setSpan(parent, span);
}

/** Runs `fn` with `span` active (a child of the active context). */
export function withActiveSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** Runs `fn` with `ctx` as the active context (a no-op without a context manager). */
export function inContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** The active span's trace id, or undefined (no provider, or no span). */
export function activeTraceId(): string | undefined {
  const span = trace.getSpan(context.active());
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  return trace.isSpanContextValid(sc) ? sc.traceId : undefined;
}

/** The active span's context, for a link from work done on behalf of several callers (group commit). */
export function activeSpanLink(): Link | undefined {
  const span = trace.getSpan(context.active());
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  return trace.isSpanContextValid(sc) ? { context: sc } : undefined;
}
