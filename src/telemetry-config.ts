// Metrics and tracing settings (docs/ARCHITECTURE.md, "Observability"), read
// by loadConfig (config.ts). Every bad value is reported by variable name.
type Env = Record<string, string | undefined>;

export type TelemetrySettings = {
  /** GET /metrics served (AUDITLOG_METRICS=on|off, default on). */
  metricsEnabled: boolean;
  /** When set, GET /metrics needs `Authorization: Bearer <token>`. */
  metricsToken: string | null;
  /** The OTLP/HTTP traces URL; null: tracing off (no provider, no cost). */
  tracesUrl: string | null;
  /** `service.name` of exported spans. */
  serviceName: string;
};

const URL_RE = /^https?:\/\/[^/]+/;

/**
 * The standard OpenTelemetry variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
 * the traces URL as is; OTEL_EXPORTER_OTLP_ENDPOINT is a base URL to which
 * `/v1/traces` is added (the OTLP/HTTP convention). OTEL_SDK_DISABLED=true
 * turns tracing off whatever else is set.
 */
export function telemetryConfig(env: Env, errors: string[]): TelemetrySettings {
  const metrics = (env.AUDITLOG_METRICS || "on").toLowerCase();
  if (!["on", "off", "true", "false"].includes(metrics))
    errors.push(`AUDITLOG_METRICS=${JSON.stringify(env.AUDITLOG_METRICS)}: must be on or off`);
  const metricsToken = env.AUDITLOG_METRICS_TOKEN || null;
  if (metricsToken !== null && metricsToken.length < 16) errors.push("AUDITLOG_METRICS_TOKEN: must be at least 16 characters");
  let tracesUrl: string | null = null;
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || null;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT || null;
  if (traces !== null) {
    if (URL_RE.test(traces)) tracesUrl = traces;
    else errors.push("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be an http:// or https:// URL");
  } else if (base !== null) {
    if (URL_RE.test(base)) tracesUrl = `${base.replace(/\/+$/, "")}/v1/traces`;
    else errors.push("OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL");
  }
  if ((env.OTEL_SDK_DISABLED ?? "").toLowerCase() === "true") tracesUrl = null;
  return {
    metricsEnabled: metrics === "on" || metrics === "true",
    metricsToken,
    tracesUrl,
    serviceName: env.OTEL_SERVICE_NAME || "auditlog",
  };
}
