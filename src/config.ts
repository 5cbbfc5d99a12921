// Environment -> typed configuration. Every bad value is reported at once,
// by variable name, before anything starts.
import type { JwtSettings } from "./auth/jwt-verifier.ts";
import { parseQueueBindings, type QueueBinding } from "./services/amqp/queue-message.ts";
import { wholeNumber } from "./env-number.ts";
import { jwtConfig } from "./jwt-config.ts";
import { type KekSettings, kekConfig, type TlsSettings, tlsConfig } from "./data-protection-config.ts";
import { type TelemetrySettings, telemetryConfig } from "./telemetry-config.ts";
import { type ArchiveSettings, archiveConfig } from "./lifecycle-config.ts";
export type Config = {
  host: string;
  port: number;
  databaseUrl: string | null;
  dataDir: string;
  embeddedPostgresPort: number;
  bootstrapKey: string | null;
  corsOrigins: string[];
  logLevel: "debug" | "info" | "warn" | "error";
  pgPoolSize: number;
  pgReadPoolSize: number;
  readTimeoutMs: number;
  exportPageTimeoutMs: number;
  tenantReadConcurrency: number;
  readQueueMs: number;
  /** Refusals of one caller per second answered at once; the tarpit (src/server/refusal-tarpit.ts). */
  refusalFreePerSecond: number;
  /** How late (at least; at most 1.5 times) a caller's further refusals are answered; 0 turns the tarpit off. */
  refusalDelayMs: number;
  /** Events per second one tenant may submit to one replica; 0: unlimited. */
  tenantIngestRate: number;
  /** Most events one tenant may submit at once to one replica (the bucket's size). */
  tenantIngestBurst: number;
  /** Events per second one API key (or token subject) may submit to one replica; 0: unlimited. */
  keyIngestRate: number;
  keyIngestBurst: number;
  /** QueryService requests per second of one tenant on one replica; 0: unlimited. */
  tenantReadRate: number;
  tenantReadBurst: number;
  /** QueryService requests per second of one API key (or token subject) on one replica; 0: unlimited. */
  keyReadRate: number;
  keyReadBurst: number;
  /** Ingest and ExportEvents streams one API key (or token subject) may hold open on one replica; 0: unlimited. */
  keyMaxStreams: number;
  /** An Ingest stream with no message for this long ends (DEADLINE_EXCEEDED); 0: never. */
  streamIdleMs: number;
  /** Ingest and ExportEvents streams end after this long (DEADLINE_EXCEEDED); 0: never. */
  streamMaxDurationMs: number;
  batchMaxEvents: number;
  maxPendingEvents: number;
  /** Group-commit transactions written at once, each for other tenants (one write-pool connection each). */
  commitLanes: number;
  shutdownGraceMs: number;
  keyCacheMs: number;
  /** Record every read and admin action in the tenant's log (AUDITLOG_ACCESS_AUDIT=on, the default); off only where that is not wanted, e.g. tests that count events. */
  accessAudit: boolean;
  maxMessageBytes: number;
  /** Most time a connection may take to send a request head (or the HTTP/2 preface). */
  headersTimeoutMs: number;
  /** Most time a connection may sit with no call in progress. */
  idleTimeoutMs: number;
  /** RabbitMQ to consume events from (AMQP ingest); null: no AMQP consumer. */
  amqpUrl: string | null;
  /** Queues to consume: `queue=tenant` binds a queue to a tenant; a queue alone takes an API key from each message. */
  amqpQueues: QueueBinding[];
  /** Unacked AMQP messages in flight. */
  amqpPrefetch: number;
  /** Interval of TailEvents heartbeats on an idle stream (a request may ask for another). */
  tailHeartbeatMs: number;
  /** Matching events one TailEvents client may have waiting before its stream is ended. */
  tailBufferEvents: number;
  elasticsearchUrl: string | null;
  reconcileIntervalMs: number;
  /** Archive bucket (src/lifecycle-config.ts); null: none, retention never deletes events. */
  archive: ArchiveSettings | null;
  /** Interval of retention rounds; 0 turns the job off. */
  retentionIntervalMs: number;
  /** Elasticsearch index prefix (src/search/elasticsearch/index-names.ts): alias, template and `<prefix>-*` indices. */
  elasticsearchIndexPrefix: string;
  /** Search indexing with waiting work and no progress for this long makes QueryService NOT_SERVING. */
  indexStallMs: number;
  /** PEM file of the Ed25519 key that signs checkpoints and export manifests; null: none (npm start without DATABASE_URL makes one in the data directory). */
  checkpointKeyFile: string | null;
  /** Sign every tenant's moved chain head this often; 0: only on demand (CreateCheckpoint). */
  checkpointIntervalMs: number;
  /** People's tokens (JWT / OIDC, src/jwt-config.ts); null: API keys only. */
  jwt: JwtSettings | null;
  /** GET /metrics and OpenTelemetry tracing (src/telemetry-config.ts). */
  telemetry: TelemetrySettings;
  /** TLS on the server port (src/data-protection-config.ts); null: cleartext. */
  tls: TlsSettings | null;
  /** Key-encryption keys for encryption at rest; null: encryption off. */
  kek: KekSettings | null;
};

export class ConfigError extends Error {}

// One message of Append or Ingest: the default burst lets the largest through.
const MAX_EVENTS_PER_MESSAGE = 1000;
const DEFAULT_TENANT_READ_RATE = 500;

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Config {
  const errors: string[] = [];
  const int = (name: string, dflt: number, min: number, max: number): number => wholeNumber(env, name, dflt, min, max, errors);
  const accessAudit = env.AUDITLOG_ACCESS_AUDIT || "on";
  if (accessAudit !== "on" && accessAudit !== "off") {
    errors.push(`AUDITLOG_ACCESS_AUDIT=${JSON.stringify(accessAudit)}: must be on or off`);
  }
  const amqpUrl = env.AUDITLOG_AMQP_URL || null;
  let amqpQueues: QueueBinding[] = [];
  try {
    amqpQueues = parseQueueBindings(env.AUDITLOG_AMQP_QUEUES ?? "");
  } catch (err) {
    errors.push(`AUDITLOG_AMQP_QUEUES: ${(err as Error).message}`);
  }
  if (amqpUrl && !/^amqps?:\/\//.test(amqpUrl)) errors.push("AUDITLOG_AMQP_URL: must start with amqp:// or amqps://");
  if (amqpUrl && amqpQueues.length === 0) errors.push("AUDITLOG_AMQP_QUEUES: name at least one queue when AUDITLOG_AMQP_URL is set");
  const logLevel = env.LOG_LEVEL || "info";
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    errors.push(`LOG_LEVEL=${JSON.stringify(logLevel)}: must be debug, info, warn or error`);
  }
  const bootstrapKey = env.AUDITLOG_BOOTSTRAP_KEY || null;
  if (bootstrapKey !== null && bootstrapKey.length < 24) {
    errors.push("AUDITLOG_BOOTSTRAP_KEY: must be at least 24 characters (use e.g. `openssl rand -hex 24`)");
  }
  const databaseUrl = env.DATABASE_URL || null;
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    errors.push("DATABASE_URL: must be a postgres:// or postgresql:// URL");
  }
  const elasticsearchUrl = env.ELASTICSEARCH_URL || null;
  if (elasticsearchUrl !== null && !/^https?:\/\/[^/]+/.test(elasticsearchUrl)) {
    errors.push("ELASTICSEARCH_URL: must be an http:// or https:// URL");
  }
  const elasticsearchIndexPrefix = env.AUDITLOG_ES_INDEX_PREFIX || "auditlog-events";
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(elasticsearchIndexPrefix)) {
    errors.push("AUDITLOG_ES_INDEX_PREFIX: lowercase letters, digits, '-', '_', '.', starting with a letter or digit");
  }
  const corsOrigins = (env.CORS_ORIGINS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const o of corsOrigins) {
    if (o !== "*" && !/^https?:\/\/[^/]+$/.test(o)) {
      errors.push(`CORS_ORIGINS: ${JSON.stringify(o)} is not an origin like https://app.example.com (or *)`);
    }
  }
  const tenantIngestRate = int("AUDITLOG_TENANT_INGEST_RATE", 0, 0, 100_000_000);
  const keyIngestRate = int("AUDITLOG_KEY_INGEST_RATE", 0, 0, 100_000_000);
  const tenantReadRate = int("AUDITLOG_TENANT_READ_RATE", DEFAULT_TENANT_READ_RATE, 0, 1_000_000);
  const keyReadRate = int("AUDITLOG_KEY_READ_RATE", 0, 0, 1_000_000);
  const config: Config = {
    host: env.HOST || "127.0.0.1",
    port: int("PORT", 8080, 0, 65535),
    databaseUrl,
    dataDir: env.AUDITLOG_DATA_DIR || ".data",
    embeddedPostgresPort: int("AUDITLOG_EMBEDDED_PG_PORT", 5433, 1, 65535),
    bootstrapKey,
    corsOrigins,
    logLevel: logLevel as Config["logLevel"],
    // Writes (group commit, indexer, reconciler, keys, admin) and reads have
    // pools of their own, so slow reads never hold up ingest.
    pgPoolSize: int("PG_POOL_SIZE", 10, 2, 200),
    pgReadPoolSize: int("PG_READ_POOL_SIZE", 8, 1, 200),
    // Per statement of search, stats, GetEvent and VerifyChain (its pages).
    readTimeoutMs: int("AUDITLOG_READ_TIMEOUT_MS", 15_000, 100, 3_600_000),
    // Exports stream for as long as they need: the bound is per page read, not for the whole export.
    exportPageTimeoutMs: int("AUDITLOG_EXPORT_PAGE_TIMEOUT_MS", 60_000, 100, 3_600_000),
    tenantReadConcurrency: int("AUDITLOG_TENANT_READ_CONCURRENCY", 4, 1, 1000),
    readQueueMs: int("AUDITLOG_READ_QUEUE_MS", 1_000, 0, 60_000),
    refusalFreePerSecond: int("AUDITLOG_REFUSAL_FREE_PER_SECOND", 20, 0, 1_000_000),
    refusalDelayMs: int("AUDITLOG_REFUSAL_DELAY_MS", 500, 0, 60_000),
    // Unlimited by default: what one replica can take depends on its machine
    // and PostgreSQL, so the operator sets it (docs/ARCHITECTURE.md, Tenancy).
    tenantIngestRate,
    tenantIngestBurst: int("AUDITLOG_TENANT_INGEST_BURST", Math.max(MAX_EVENTS_PER_MESSAGE, tenantIngestRate), 1, 100_000_000),
    keyIngestRate,
    keyIngestBurst: int("AUDITLOG_KEY_INGEST_BURST", Math.max(MAX_EVENTS_PER_MESSAGE, keyIngestRate), 1, 100_000_000),
    // Reads: far above what one client reading in a loop needs (the benchmark's sequential
    // searches stay under it), low enough that one tenant's flood of cheap calls cannot
    // take a replica's event loop and read pool. Bursts of two seconds' worth.
    tenantReadRate,
    tenantReadBurst: int("AUDITLOG_TENANT_READ_BURST", Math.max(1, 2 * tenantReadRate), 1, 2_000_000),
    keyReadRate,
    keyReadBurst: int("AUDITLOG_KEY_READ_BURST", Math.max(1, 2 * keyReadRate), 1, 2_000_000),
    keyMaxStreams: int("AUDITLOG_KEY_MAX_STREAMS", 32, 0, 100_000),
    // Above a producer's usual pause between messages; a stream left open by a dead producer ends.
    streamIdleMs: int("AUDITLOG_STREAM_IDLE_MS", 60_000, 0, 24 * 3600 * 1000),
    // Long enough for a large export; clients open a new stream after it.
    streamMaxDurationMs: int("AUDITLOG_STREAM_MAX_MS", 3600 * 1000, 0, 7 * 24 * 3600 * 1000),
    batchMaxEvents: int("AUDITLOG_BATCH_MAX_EVENTS", 5000, 1, 100_000),
    maxPendingEvents: int("AUDITLOG_MAX_PENDING_EVENTS", 20_000, 1000, 10_000_000),
    // Two: one tenant's large transaction no longer holds up the others'; each lane holds a write-pool connection while it writes.
    commitLanes: int("AUDITLOG_COMMIT_LANES", 2, 1, 32),
    shutdownGraceMs: int("AUDITLOG_SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    keyCacheMs: int("AUDITLOG_KEY_CACHE_MS", 5_000, 0, 600_000),
    accessAudit: accessAudit !== "off",
    maxMessageBytes: int("AUDITLOG_MAX_MESSAGE_BYTES", 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    // A connection that sends nothing parseable is closed: these bound how long it can hold a socket.
    headersTimeoutMs: int("AUDITLOG_HEADERS_TIMEOUT_MS", 30_000, 100, 600_000),
    // Above common load balancers' idle timeouts (60 s), so they close first. Calls in progress are never cut.
    idleTimeoutMs: int("AUDITLOG_IDLE_TIMEOUT_MS", 65_000, 100, 24 * 3600 * 1000),
    amqpUrl,
    amqpQueues,
    amqpPrefetch: int("AUDITLOG_AMQP_PREFETCH", 500, 1, 65_535),
    tailHeartbeatMs: int("AUDITLOG_TAIL_HEARTBEAT_MS", 15_000, 100, 300_000),
    tailBufferEvents: int("AUDITLOG_TAIL_BUFFER_EVENTS", 1000, 1, 1_000_000),
    elasticsearchUrl,
    // Each round groups every tenant's whole history on both sides: hours, not minutes.
    reconcileIntervalMs: int("AUDITLOG_RECONCILE_INTERVAL_MS", 6 * 3600 * 1000, 0, 7 * 24 * 3600 * 1000),
    archive: archiveConfig(env, errors),
    retentionIntervalMs: int("AUDITLOG_RETENTION_INTERVAL_MS", 3600 * 1000, 0, 7 * 24 * 3600 * 1000),
    elasticsearchIndexPrefix,
    // Long enough that a refresh, a retry or a busy cluster does not flap health.
    indexStallMs: int("AUDITLOG_INDEX_STALL_MS", 60_000, 1000, 24 * 3600 * 1000),
    checkpointKeyFile: env.AUDITLOG_CHECKPOINT_KEY_FILE || null,
    checkpointIntervalMs: int("AUDITLOG_CHECKPOINT_INTERVAL_MS", 3600 * 1000, 0, 7 * 24 * 3600 * 1000),
    jwt: jwtConfig(env, errors),
    telemetry: telemetryConfig(env, errors),
    tls: tlsConfig(env, errors),
    kek: kekConfig(env, errors),
  };
  if (errors.length) throw new ConfigError(`invalid configuration:\n  ${errors.join("\n  ")}`);
  return config;
}
