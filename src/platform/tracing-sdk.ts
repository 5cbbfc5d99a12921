// Turns tracing on: a tracer provider that exports spans over OTLP/HTTP in
// batches, registered globally with the W3C trace-context propagator and an
// AsyncLocalStorage context manager. serve.ts loads and calls it only when an endpoint
// is configured; otherwise nothing is registered and the API stays a no-op.
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

export type Tracing = { shutdown(): Promise<void> };

/**
 * `url` is the traces endpoint itself (e.g. http://collector:4318/v1/traces).
 * Other OTEL_EXPORTER_OTLP_* settings (headers, timeout, compression) are
 * read from the environment by the exporter.
 */
export function startTracing(opts: { url: string; serviceName: string }): Tracing {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": opts.serviceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: opts.url }))],
  });
  provider.register();
  return { shutdown: () => provider.shutdown() };
}
