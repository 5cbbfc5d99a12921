import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";

function errorOf(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

/** The error lines after the heading. */
function problems(e: ConfigError): string[] {
  const [heading, ...rest] = e.message.split("\n");
  expect(heading).toBe("invalid configuration:");
  return rest.map((l) => l.trim());
}

describe("loadConfig", () => {
  it("has defaults for everything", () => {
    expect(loadConfig({})).toEqual({
      host: "127.0.0.1",
      port: 8080,
      databaseUrl: null,
      dataDir: ".data",
      embeddedPostgresPort: 5433,
      bootstrapKey: null,
      corsOrigins: [],
      logLevel: "info",
      pgPoolSize: 10,
      pgReadPoolSize: 8,
      readTimeoutMs: 15_000,
      exportPageTimeoutMs: 60_000,
      tenantReadConcurrency: 4,
      readQueueMs: 1_000,
      refusalFreePerSecond: 20,
      refusalDelayMs: 500,
      tenantIngestRate: 0,
      tenantIngestBurst: 1000,
      keyIngestRate: 0,
      keyIngestBurst: 1000,
      tenantReadRate: 500,
      tenantReadBurst: 1000,
      keyReadRate: 0,
      keyReadBurst: 1,
      keyMaxStreams: 32,
      streamIdleMs: 60_000,
      streamMaxDurationMs: 3_600_000,
      amqpUrl: null,
      amqpQueues: [],
      amqpPrefetch: 500,
      tailHeartbeatMs: 15_000,
      tailBufferEvents: 1000,
      batchMaxEvents: 5000,
      maxPendingEvents: 20_000,
      commitLanes: 2,
      shutdownGraceMs: 10_000,
      keyCacheMs: 5_000,
      accessAudit: true,
      maxMessageBytes: 8 * 1024 * 1024,
      headersTimeoutMs: 30_000,
      idleTimeoutMs: 65_000,
      elasticsearchUrl: null,
      reconcileIntervalMs: 6 * 3600 * 1000,
      archive: null,
      retentionIntervalMs: 3600 * 1000,
      elasticsearchIndexPrefix: "auditlog-events",
      indexStallMs: 60_000,
      checkpointKeyFile: null,
      checkpointIntervalMs: 3_600_000,
      jwt: null,
      telemetry: { metricsEnabled: true, metricsToken: null, tracesUrl: null, serviceName: "auditlog" },
      tls: null,
      kek: null,
    });
  });

  it("treats empty strings as unset", () => {
    const env = Object.fromEntries(
      ["HOST", "PORT", "DATABASE_URL", "AUDITLOG_DATA_DIR", "AUDITLOG_BOOTSTRAP_KEY", "CORS_ORIGINS", "LOG_LEVEL", "PG_POOL_SIZE"].map(
        (k) => [k, ""],
      ),
    );
    expect(loadConfig(env)).toEqual(loadConfig({}));
  });

  it("reads every variable", () => {
    const c = loadConfig({
      HOST: "0.0.0.0",
      PORT: "9090",
      DATABASE_URL: "postgresql://u:p@db:5432/audit",
      AUDITLOG_DATA_DIR: "/var/lib/auditlog",
      AUDITLOG_EMBEDDED_PG_PORT: "6543",
      AUDITLOG_BOOTSTRAP_KEY: "0123456789abcdef01234567",
      CORS_ORIGINS: " https://app.example.com , http://localhost:3000,,* ",
      LOG_LEVEL: "debug",
      PG_POOL_SIZE: "20",
      PG_READ_POOL_SIZE: "12",
      AUDITLOG_READ_TIMEOUT_MS: "5000",
      AUDITLOG_EXPORT_PAGE_TIMEOUT_MS: "30000",
      AUDITLOG_TENANT_READ_CONCURRENCY: "2",
      AUDITLOG_READ_QUEUE_MS: "0",
      AUDITLOG_REFUSAL_FREE_PER_SECOND: "5",
      AUDITLOG_REFUSAL_DELAY_MS: "0",
      AUDITLOG_TENANT_INGEST_RATE: "2000",
      AUDITLOG_TENANT_INGEST_BURST: "3000",
      AUDITLOG_KEY_INGEST_RATE: "500",
      AUDITLOG_KEY_INGEST_BURST: "1500",
      AUDITLOG_TENANT_READ_RATE: "0",
      AUDITLOG_TENANT_READ_BURST: "7",
      AUDITLOG_KEY_READ_RATE: "20",
      AUDITLOG_KEY_READ_BURST: "30",
      AUDITLOG_KEY_MAX_STREAMS: "0",
      AUDITLOG_STREAM_IDLE_MS: "0",
      AUDITLOG_STREAM_MAX_MS: "600000",
      AUDITLOG_AMQP_URL: "amqp://u:p@mq:5672/audit",
      AUDITLOG_AMQP_QUEUES: " billing-events = acme , shared ",
      AUDITLOG_AMQP_PREFETCH: "100",
      AUDITLOG_TAIL_HEARTBEAT_MS: "5000",
      AUDITLOG_TAIL_BUFFER_EVENTS: "200",
      AUDITLOG_BATCH_MAX_EVENTS: "100",
      AUDITLOG_MAX_PENDING_EVENTS: "1000",
      AUDITLOG_COMMIT_LANES: "4",
      AUDITLOG_SHUTDOWN_GRACE_MS: "0",
      AUDITLOG_KEY_CACHE_MS: "600000",
      AUDITLOG_ACCESS_AUDIT: "off",
      AUDITLOG_MAX_MESSAGE_BYTES: "1024",
      AUDITLOG_HEADERS_TIMEOUT_MS: "2000",
      AUDITLOG_IDLE_TIMEOUT_MS: "3000",
      ELASTICSEARCH_URL: "http://es:9200",
      AUDITLOG_RECONCILE_INTERVAL_MS: "0",
      AUDITLOG_ARCHIVE_S3_ENDPOINT: "http://minio:9000/",
      AUDITLOG_ARCHIVE_S3_BUCKET: "audit-archive",
      AUDITLOG_ARCHIVE_S3_REGION: "eu-west-1",
      AUDITLOG_ARCHIVE_S3_PREFIX: "prod",
      AUDITLOG_RETENTION_INTERVAL_MS: "0",
      AUDITLOG_ES_INDEX_PREFIX: "audit-v2",
      AUDITLOG_INDEX_STALL_MS: "5000",
      AUDITLOG_CHECKPOINT_KEY_FILE: "/etc/auditlog/checkpoint.pem",
      AUDITLOG_CHECKPOINT_INTERVAL_MS: "0",
    });
    expect(c).toEqual({
      host: "0.0.0.0",
      port: 9090,
      databaseUrl: "postgresql://u:p@db:5432/audit",
      dataDir: "/var/lib/auditlog",
      embeddedPostgresPort: 6543,
      bootstrapKey: "0123456789abcdef01234567",
      corsOrigins: ["https://app.example.com", "http://localhost:3000", "*"],
      logLevel: "debug",
      pgPoolSize: 20,
      pgReadPoolSize: 12,
      readTimeoutMs: 5000,
      exportPageTimeoutMs: 30_000,
      tenantReadConcurrency: 2,
      readQueueMs: 0,
      refusalFreePerSecond: 5,
      refusalDelayMs: 0,
      tenantIngestRate: 2000,
      tenantIngestBurst: 3000,
      keyIngestRate: 500,
      keyIngestBurst: 1500,
      tenantReadRate: 0,
      tenantReadBurst: 7,
      keyReadRate: 20,
      keyReadBurst: 30,
      keyMaxStreams: 0,
      streamIdleMs: 0,
      streamMaxDurationMs: 600_000,
      amqpUrl: "amqp://u:p@mq:5672/audit",
      amqpQueues: [
        { queue: "billing-events", tenantId: "acme" },
        { queue: "shared", tenantId: null },
      ],
      amqpPrefetch: 100,
      tailHeartbeatMs: 5000,
      tailBufferEvents: 200,
      batchMaxEvents: 100,
      maxPendingEvents: 1000,
      commitLanes: 4,
      shutdownGraceMs: 0,
      keyCacheMs: 600_000,
      accessAudit: false,
      maxMessageBytes: 1024,
      headersTimeoutMs: 2000,
      idleTimeoutMs: 3000,
      elasticsearchUrl: "http://es:9200",
      reconcileIntervalMs: 0,
      archive: { endpoint: "http://minio:9000", bucket: "audit-archive", region: "eu-west-1", prefix: "prod/" },
      retentionIntervalMs: 0,
      elasticsearchIndexPrefix: "audit-v2",
      indexStallMs: 5000,
      checkpointKeyFile: "/etc/auditlog/checkpoint.pem",
      checkpointIntervalMs: 0,
      jwt: null,
      telemetry: { metricsEnabled: true, metricsToken: null, tracesUrl: null, serviceName: "auditlog" },
      tls: null,
      kek: null,
    });
  });

  it.each([
    [{ AUDITLOG_AMQP_URL: "amqp://mq" }, "AUDITLOG_AMQP_QUEUES: name at least one queue"],
    [{ AUDITLOG_AMQP_URL: "http://mq", AUDITLOG_AMQP_QUEUES: "q" }, "AUDITLOG_AMQP_URL: must start with amqp://"],
    [{ AUDITLOG_AMQP_URL: "amqp://mq", AUDITLOG_AMQP_QUEUES: "q=" }, 'AUDITLOG_AMQP_QUEUES: "q=": expected queue=tenant or queue'],
    [{ AUDITLOG_TAIL_BUFFER_EVENTS: "0" }, "AUDITLOG_TAIL_BUFFER_EVENTS"],
    [{ AUDITLOG_TAIL_HEARTBEAT_MS: "99" }, "AUDITLOG_TAIL_HEARTBEAT_MS"],
  ])("refuses the AMQP and tail settings %j", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it("accepts postgres:// as well as postgresql://", () => {
    expect(loadConfig({ DATABASE_URL: "postgres://localhost/x" }).databaseUrl).toBe("postgres://localhost/x");
  });

  it("accepts the bounds of numeric ranges", () => {
    expect(loadConfig({ PORT: "0" }).port).toBe(0);
    expect(loadConfig({ PORT: "65535" }).port).toBe(65535);
    expect(loadConfig({ PG_POOL_SIZE: "2" }).pgPoolSize).toBe(2);
    expect(loadConfig({ PG_POOL_SIZE: "200" }).pgPoolSize).toBe(200);
    expect(loadConfig({ AUDITLOG_MAX_PENDING_EVENTS: "10000000" }).maxPendingEvents).toBe(10_000_000);
  });

  it.each(["debug", "info", "warn", "error"])("accepts LOG_LEVEL=%s", (level) => {
    expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
  });

  it.each([
    ["PORT", "http"],
    ["PORT", "65536"],
    ["PORT", "-1"],
    ["PORT", "80.5"],
    ["AUDITLOG_EMBEDDED_PG_PORT", "0"],
    ["PG_POOL_SIZE", "1"],
    ["PG_POOL_SIZE", "201"],
    ["AUDITLOG_BATCH_MAX_EVENTS", "0"],
    ["AUDITLOG_BATCH_MAX_EVENTS", "100001"],
    ["AUDITLOG_MAX_PENDING_EVENTS", "999"],
    ["AUDITLOG_COMMIT_LANES", "0"],
    ["AUDITLOG_COMMIT_LANES", "33"],
    ["AUDITLOG_SHUTDOWN_GRACE_MS", "600001"],
    ["AUDITLOG_KEY_CACHE_MS", "-5"],
    ["AUDITLOG_MAX_MESSAGE_BYTES", "1023"],
    ["AUDITLOG_MAX_MESSAGE_BYTES", "NaN"],
    ["AUDITLOG_INDEX_STALL_MS", "999"],
    ["AUDITLOG_CHECKPOINT_INTERVAL_MS", "604800001"],
  ])("names %s=%j in the error", (name, value) => {
    const [p, ...more] = problems(errorOf({ [name]: value }));
    expect(more).toEqual([]);
    const prefix = `${name}=${JSON.stringify(value)}: `;
    expect(p!.startsWith(prefix)).toBe(true);
    expect(p!.slice(prefix.length)).toMatch(/^must be a whole number from \d+ to \d+$/);
  });

  it("states the allowed range for a number", () => {
    expect(problems(errorOf({ PG_POOL_SIZE: "1" }))).toEqual(['PG_POOL_SIZE="1": must be a whole number from 2 to 200']);
  });

  it("names a bad index prefix", () => {
    expect(problems(errorOf({ AUDITLOG_ES_INDEX_PREFIX: "Audit*" }))[0]).toMatch(/^AUDITLOG_ES_INDEX_PREFIX: /);
  });

  it("names a bad AUDITLOG_ACCESS_AUDIT", () => {
    expect(problems(errorOf({ AUDITLOG_ACCESS_AUDIT: "yes" }))).toEqual(['AUDITLOG_ACCESS_AUDIT="yes": must be on or off']);
  });

  it("names a bad LOG_LEVEL", () => {
    expect(problems(errorOf({ LOG_LEVEL: "verbose" }))).toEqual(['LOG_LEVEL="verbose": must be debug, info, warn or error']);
    expect(problems(errorOf({ LOG_LEVEL: "INFO" }))[0]).toMatch(/^LOG_LEVEL="INFO"/);
  });

  it("names a short bootstrap key without echoing it", () => {
    const [p] = problems(errorOf({ AUDITLOG_BOOTSTRAP_KEY: "short-secret" }));
    expect(p).toMatch(/^AUDITLOG_BOOTSTRAP_KEY: must be at least 24 characters/);
    expect(p).not.toContain("short-secret");
    expect(loadConfig({ AUDITLOG_BOOTSTRAP_KEY: "x".repeat(24) }).bootstrapKey).toBe("x".repeat(24));
    expect(() => loadConfig({ AUDITLOG_BOOTSTRAP_KEY: "x".repeat(23) })).toThrow(/AUDITLOG_BOOTSTRAP_KEY/);
  });

  it("names a DATABASE_URL that is not a PostgreSQL URL without echoing it", () => {
    for (const url of ["mysql://u:secret@db/x", "localhost:5432", "postgres:/x"]) {
      const [p] = problems(errorOf({ DATABASE_URL: url }));
      expect(p).toBe("DATABASE_URL: must be a postgres:// or postgresql:// URL");
      expect(p).not.toContain("secret");
    }
  });

  it("names each bad CORS origin", () => {
    const ps = problems(errorOf({ CORS_ORIGINS: "https://ok.example.com,app.example.com,https://x.example.com/path" }));
    expect(ps).toEqual([
      'CORS_ORIGINS: "app.example.com" is not an origin like https://app.example.com (or *)',
      'CORS_ORIGINS: "https://x.example.com/path" is not an origin like https://app.example.com (or *)',
    ]);
  });

  it("reports several errors together, one per line, each naming its variable", () => {
    const e = errorOf({
      PORT: "eighty",
      LOG_LEVEL: "loud",
      PG_POOL_SIZE: "0",
      DATABASE_URL: "http://db",
      AUDITLOG_BOOTSTRAP_KEY: "abc",
      CORS_ORIGINS: "nope",
      AUDITLOG_KEY_CACHE_MS: "1.5",
    });
    const ps = problems(e);
    expect(ps).toHaveLength(7);
    for (const name of [
      "PORT",
      "LOG_LEVEL",
      "PG_POOL_SIZE",
      "DATABASE_URL",
      "AUDITLOG_BOOTSTRAP_KEY",
      "CORS_ORIGINS",
      "AUDITLOG_KEY_CACHE_MS",
    ]) {
      expect(ps.filter((p) => p.startsWith(name))).toHaveLength(1);
    }
    expect(
      e.message
        .split("\n")
        .slice(1)
        .every((l) => l.startsWith("  ")),
    ).toBe(true);
  });

  it("reads process.env when called without an argument", () => {
    const saved = process.env.PG_POOL_SIZE;
    process.env.PG_POOL_SIZE = "33";
    try {
      expect(loadConfig().pgPoolSize).toBe(33);
    } finally {
      if (saved === undefined) delete process.env.PG_POOL_SIZE;
      else process.env.PG_POOL_SIZE = saved;
    }
  });
});

describe("loadConfig: metrics and tracing", () => {
  it("turns /metrics off and guards it with a token", () => {
    expect(loadConfig({ AUDITLOG_METRICS: "off" }).telemetry.metricsEnabled).toBe(false);
    expect(loadConfig({ AUDITLOG_METRICS: "on" }).telemetry.metricsEnabled).toBe(true);
    expect(loadConfig({ AUDITLOG_METRICS_TOKEN: "0123456789abcdef" }).telemetry.metricsToken).toBe("0123456789abcdef");
  });

  it("names a bad AUDITLOG_METRICS and a short token", () => {
    expect(problems(errorOf({ AUDITLOG_METRICS: "maybe" }))).toEqual(['AUDITLOG_METRICS="maybe": must be on or off']);
    expect(problems(errorOf({ AUDITLOG_METRICS_TOKEN: "short" }))).toEqual(["AUDITLOG_METRICS_TOKEN: must be at least 16 characters"]);
  });

  it("takes the traces URL from the standard OTLP variables", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).telemetry.tracesUrl).toBe(
      "http://collector:4318/v1/traces",
    );
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://traces.example.com/otlp",
      }).telemetry.tracesUrl,
    ).toBe("https://traces.example.com/otlp");
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" }).telemetry.tracesUrl).toBeNull();
    expect(loadConfig({ OTEL_SERVICE_NAME: "audit-eu" }).telemetry.serviceName).toBe("audit-eu");
  });

  it("names a traces endpoint that is not an http(s) URL", () => {
    expect(problems(errorOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }))).toEqual([
      "OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL",
    ]);
  });

  describe("TLS and encryption keys", () => {
    const kek = Buffer.alloc(32, 7).toString("base64");
    const old = Buffer.alloc(32, 9).toString("base64url");

    it("reads the certificate and key files", () => {
      expect(loadConfig({ AUDITLOG_TLS_CERT_FILE: "/etc/a/cert.pem", AUDITLOG_TLS_KEY_FILE: "/etc/a/key.pem" }).tls).toEqual({
        certFile: "/etc/a/cert.pem",
        keyFile: "/etc/a/key.pem",
      });
    });

    it.each([{ AUDITLOG_TLS_CERT_FILE: "/c.pem" }, { AUDITLOG_TLS_KEY_FILE: "/k.pem" }])("needs both TLS files (%j)", (env) => {
      expect(problems(errorOf(env))).toEqual(["AUDITLOG_TLS_CERT_FILE and AUDITLOG_TLS_KEY_FILE: set both (TLS) or neither (cleartext)"]);
    });

    it("reads the KEK, its id and retired KEKs", () => {
      expect(loadConfig({ AUDITLOG_KEK: kek, AUDITLOG_KEK_ID: "2026-11", AUDITLOG_KEK_RETIRED: `2026-01:${old}` }).kek).toEqual({
        current: { id: "2026-11", key: Buffer.alloc(32, 7) },
        retired: [{ id: "2026-01", key: Buffer.alloc(32, 9) }],
      });
      expect(loadConfig({ AUDITLOG_KEK: kek }).kek?.current.id).toBe("kek-1");
    });

    it.each([
      [{ AUDITLOG_KEK: Buffer.alloc(16).toString("base64") }, "AUDITLOG_KEK: must be base64 of exactly 32 bytes"],
      [{ AUDITLOG_KEK: "not base64!" }, "AUDITLOG_KEK: must be base64 of exactly 32 bytes"],
      [{ AUDITLOG_KEK: kek, AUDITLOG_KEK_ID: "a b" }, "AUDITLOG_KEK_ID: 1 to 64 letters"],
      [{ AUDITLOG_KEK: kek, AUDITLOG_KEK_RETIRED: "x" }, "AUDITLOG_KEK_RETIRED: entry 1 must be <id>:<base64 of 32 bytes>"],
      [{ AUDITLOG_KEK: kek, AUDITLOG_KEK_RETIRED: `kek-1:${old}` }, 'AUDITLOG_KEK_RETIRED: id "kek-1" is the current AUDITLOG_KEK_ID'],
      [{ AUDITLOG_KEK_RETIRED: `a:${old}` }, "AUDITLOG_KEK_RETIRED: needs AUDITLOG_KEK"],
    ])("refuses %j without showing the key", (env, message) => {
      const [p, ...more] = problems(errorOf(env));
      expect(more).toEqual([]);
      expect(p!.startsWith(message)).toBe(true);
      expect(p).not.toContain(kek);
      expect(p).not.toContain(old);
    });
  });
});

describe("loadConfig: archive bucket", () => {
  it("has no archive without a bucket, and takes the region from AWS_REGION", () => {
    expect(loadConfig({}).archive).toBeNull();
    expect(loadConfig({ AUDITLOG_ARCHIVE_S3_BUCKET: "logs-archive", AWS_REGION: "eu-central-1" }).archive).toEqual({
      endpoint: "",
      bucket: "logs-archive",
      region: "eu-central-1",
      prefix: "",
    });
  });

  it("names an endpoint without a bucket, a bad bucket and a bad endpoint", () => {
    expect(() => loadConfig({ AUDITLOG_ARCHIVE_S3_ENDPOINT: "http://s3:9000" })).toThrow(/AUDITLOG_ARCHIVE_S3_BUCKET: required/);
    expect(() => loadConfig({ AUDITLOG_ARCHIVE_S3_BUCKET: "Bad_Bucket" })).toThrow(/AUDITLOG_ARCHIVE_S3_BUCKET: 3 to 63/);
    expect(() => loadConfig({ AUDITLOG_ARCHIVE_S3_BUCKET: "logs", AUDITLOG_ARCHIVE_S3_ENDPOINT: "s3:9000" })).toThrow(
      /AUDITLOG_ARCHIVE_S3_ENDPOINT: must be http/,
    );
  });
});
