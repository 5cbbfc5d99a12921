// Wiring: stores -> services -> server. Used by serve.ts and by tests that
// run the whole service in-process.
import { createValidator } from "@bufbuild/protovalidate";
import pg from "pg";
import { AdminService } from "../gen/auditlog/v1/admin_pb.js";
import { IngestService } from "../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../gen/auditlog/v1/query_pb.js";
import { Authenticator } from "./auth/authenticator.ts";
import { JwtVerifier } from "./auth/jwt-verifier.ts";
import { authInterceptor } from "./auth/auth-interceptor.ts";
import type { Config } from "./config.ts";
import { HealthState } from "./server/health.ts";
import { errorsInterceptor } from "./services/errors.ts";
import { AccessAudit } from "./services/access-audit.ts";
import { accessAuditInterceptor } from "./services/access-audit-interceptor.ts";
import { TenantStatus } from "./auth/tenant-status.ts";
import { requestCheckInterceptor } from "./server/request-check.ts";
import { startHttpServer } from "./server/http-server.ts";
import type { ContextValues } from "@connectrpc/connect";
import { callerIdOf, principalKey } from "./auth/principal.ts";
import { peerAddressKey } from "./server/access-log.ts";
import { RefusalTarpit, refusalTarpitInterceptor } from "./server/refusal-tarpit.ts";
import type { Logger } from "./platform/log.ts";
import { adminService } from "./services/admin-service.ts";
import { ingestService } from "./services/ingest-service.ts";
import { queryService } from "./services/query-service.ts";
import { ApiKeyStore } from "./store/api-key-store.ts";
import { EventReader } from "./store/event-reader.ts";
import { type WriteItem, type WriteResult, writeBatch } from "./store/event-writer.ts";
import { GroupCommitter } from "./store/group-commit.ts";
import { Metrics } from "./platform/metrics.ts";
import { activeSpanLink, type Link, withSpan } from "./platform/tracing.ts";
import { registerIngestMetrics, registerPoolMetrics } from "./app-metrics.ts";
import { tracedBackend } from "./search/traced-backend.ts";
import { migrate } from "./store/migrate.ts";
import { ensurePartitions } from "./store/partitions.ts";
import { analyzeStalePartitions } from "./store/partition-statistics.ts";
import { TenantStore } from "./store/tenant-store.ts";
import type { SearchBackend } from "./search/backend.ts";
import type { Indexer } from "./search/elasticsearch/indexer.ts";
import type { Reconciler } from "./search/elasticsearch/reconciler.ts";
import type { SearchSide } from "./app-elasticsearch.ts";
import { PostgresSearchBackend } from "./search/postgres/backend.ts";
import { TenantReadLimiter } from "./services/tenant-read-limiter.ts";
import { RateLimiter } from "./services/rate-limiter.ts";
import { limitsInterceptor } from "./services/limits-interceptor.ts";
import { ingestRateGate } from "./services/ingest-rate-gate.ts";
import { StreamLimiter } from "./services/stream-limits.ts";
import { exportHttpHandler } from "./services/export-http.ts";
import { checkpointKeyHandler } from "./services/checkpoint-key-http.ts";
import { CheckpointSchedule } from "./services/checkpoints.ts";
import { CheckpointStore } from "./store/checkpoint-store.ts";
import { signingKeyFromPem } from "./domain/signing.ts";
import { verifyArchivedChain } from "./lifecycle/archived-chain.ts";
import { Erasure } from "./lifecycle/erasure.ts";
import { RetentionJob } from "./lifecycle/retention-job.ts";
import { ArchiveRestore } from "./lifecycle/restore.ts";
import { TenantArchive } from "./lifecycle/tenant-archive.ts";
import { RetentionStore } from "./store/retention-store.ts";
import { TailFeed } from "./services/tail/tail-feed.ts";
import { CommitListener } from "./store/commit-listener.ts";
import { chainHttpRoutes } from "./server/http-routes.ts";
import { binaryTwin } from "./server/binary-twin.ts";
import { AppendRequestWireSchema, IngestRequestWireSchema } from "../gen/auditlog/internal/v1/ingest_wire_pb.js";
import { staticFilesHandler } from "./server/static-files.ts";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { DataProtectionStore } from "./store/data-protection-store.ts";
import { MaskingRulesCache } from "./services/masking-rules.ts";
import { DataKeys } from "./services/data-keys.ts";
import { DataProtection } from "./services/data-protection.ts";

/** The built web console (npm run build:console); served at / when present. */
const CONSOLE_DIR = fileURLToPath(new URL("../console/dist", import.meta.url));

export type App = {
  url: string;
  port: number;
  pool: pg.Pool;
  /** Tenant reads (search, export, stats, GetEvent, VerifyChain): apart from `pool`, so they never hold up ingest. */
  readPool: pg.Pool;
  backend: SearchBackend;
  indexer: Indexer | null;
  reconciler: Reconciler | null;
  close(): Promise<void>;
};

/**
 * Elasticsearch when configured (app-elasticsearch.ts, loaded only then:
 * without it the service never loads the client, docs/PERFORMANCE.md,
 * "Round two: memory"). Otherwise search, export and stats are served from
 * PostgreSQL; with it, exports of envelope filters still are (export-routing.ts).
 */
async function startSearch(
  config: Config,
  pool: pg.Pool,
  readPool: pg.Pool,
  log: Logger,
  health: HealthState,
  metrics: Metrics,
): Promise<SearchSide> {
  const { elasticsearchUrl } = config;
  const records = new PostgresSearchBackend(readPool, {
    statementTimeoutMs: config.readTimeoutMs,
    exportPageTimeoutMs: config.exportPageTimeoutMs,
  });
  if (!elasticsearchUrl) return { backend: records, indexer: null, reconciler: null, close: async () => {} };
  const { startElasticsearchSearch } = await import("./app-elasticsearch.ts");
  return startElasticsearchSearch({ ...config, elasticsearchUrl }, pool, readPool, records, log, health, metrics);
}

const PARTITION_CHECK_MS = 60 * 60 * 1000;
/** How often stale planner statistics of the event partitions are looked for (partition-statistics.ts). */
const STATISTICS_CHECK_MS = 20 * 1000;
/** Events per read of the live tail (bounds its memory per tenant). */
const TAIL_BATCH_EVENTS = 500;
/** The tail reads without a notification this often (a NOTIFY lost while its listener reconnected). */
const TAIL_POLL_MS = 5000;

/** Who the refusal tarpit counts a refusal against: the credential, else the peer address. */
function tarpitCaller(values: ContextValues): string | null {
  const p = values.get(principalKey);
  if (p) return callerIdOf(p);
  const peer = values.get(peerAddressKey);
  return peer ? `peer:${peer}` : null;
}

export async function startApp(config: Config & { databaseUrl: string }, log: Logger): Promise<App> {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.pgPoolSize });
  const readPool = new pg.Pool({ connectionString: config.databaseUrl, max: config.pgReadPoolSize, application_name: "auditlog-read" });
  // A connection's error (e.g. PostgreSQL restarting) must not crash the
  // process: idle connections report through the pool, and every connection
  // keeps a listener of its own, because pg can emit 'error' on a connection
  // after the query that failed on it has already returned it.
  for (const p of [pool, readPool]) {
    p.on("error", (err) => log.warn("idle PostgreSQL connection failed", { err: err.message }));
    p.on("connect", (client) => {
      client.on("error", (err) => log.warn("PostgreSQL connection failed", { err: err.message }));
    });
  }
  const applied = await migrate(pool);
  if (applied.length) log.info("migrations applied", { applied });
  const created = await ensurePartitions(pool);
  if (created.length) log.info("partitions created", { created });
  const partitionTimer = setInterval(() => {
    ensurePartitions(pool).then(
      (made) => made.length && log.info("partitions created", { created: made }),
      (err: Error) => log.error("partition maintenance failed", { err: err.message }),
    );
  }, PARTITION_CHECK_MS);
  partitionTimer.unref();
  const statisticsTimer = setInterval(() => {
    analyzeStalePartitions(pool).then(
      (analyzed) => analyzed.length && log.info("partition statistics updated", { analyzed }),
      (err: Error) => log.error("partition statistics failed", { err: err.message }),
    );
  }, STATISTICS_CHECK_MS);
  statisticsTimer.unref();

  const validator = createValidator();
  const keys = new ApiKeyStore(pool);
  const tenants = new TenantStore(pool);
  // Masking and encryption at rest, on the shared ingest path and the reads (docs/ARCHITECTURE.md, "Data protection").
  const protectionStore = new DataProtectionStore(pool);
  const masking = new MaskingRulesCache(protectionStore, config.keyCacheMs);
  const dataKeys = config.kek ? new DataKeys(protectionStore, config.kek, config.keyCacheMs) : null;
  const protection = new DataProtection(masking, dataKeys);
  // Suspension is cached as long as keys are, and forgotten here when this replica changes it.
  const tenantStatus = new TenantStatus((id) => tenants.suspendedAt(id), config.keyCacheMs);
  const auth = new Authenticator(keys, config.bootstrapKey, config.keyCacheMs, {
    tokens: config.jwt ? new JwtVerifier(config.jwt) : null,
  });
  const metrics = new Metrics({ runtime: config.telemetry.metricsEnabled });
  registerPoolMetrics(metrics, { write: pool, read: readPool });
  const committer = new GroupCommitter<WriteItem, WriteResult>((items) => writeBatch(pool, items), {
    maxBatchEvents: config.batchMaxEvents,
    maxPendingEvents: config.maxPendingEvents,
    // Tenants are written in lanes of their own: each tenant's events in order, one lane at a time (its chain head).
    lanes: config.commitLanes,
    laneKey: (item) => item.tenantId,
    observe: metrics.observeCommit,
    // Each caller's commit span; the batch's transaction is a trace of its
    // own linked to them (one transaction serves many callers' traces).
    tag: activeSpanLink,
    around: (tags, write) => {
      const links = tags.filter((t): t is Link => t !== undefined);
      return links.length === 0
        ? write()
        : withSpan("commit batch", write, { root: true, links, attributes: { "auditlog.callers": tags.length } });
    },
  });
  registerIngestMetrics(metrics, committer);
  const accessAudit = config.accessAudit
    ? new AccessAudit((items) => committer.submit(items), log.child({ component: "access-audit" }))
    : undefined;
  const reader = new EventReader(readPool, { statementTimeoutMs: config.readTimeoutMs });
  const readLimiter = new TenantReadLimiter({ perTenant: config.tenantReadConcurrency, maxWaitMs: config.readQueueMs });
  const ingestLimiter = new RateLimiter({
    work: "ingest",
    unit: "events",
    perTenant: { ratePerSecond: config.tenantIngestRate, burst: config.tenantIngestBurst },
    perKey: { ratePerSecond: config.keyIngestRate, burst: config.keyIngestBurst },
  });
  const readRates = new RateLimiter({
    work: "read",
    unit: "requests",
    perTenant: { ratePerSecond: config.tenantReadRate, burst: config.tenantReadBurst },
    perKey: { ratePerSecond: config.keyReadRate, burst: config.keyReadBurst },
  });
  // One set for the RPCs and GET /v1/export: a caller has one read budget and one stream count whichever way it reads.
  const limitSet = {
    reads: readRates,
    streams: new StreamLimiter(config.keyMaxStreams),
    streamBounds: { maxDurationMs: config.streamMaxDurationMs, idleMs: config.streamIdleMs },
  };
  const limits = limitsInterceptor(limitSet);
  // Per service too, so that search can be reported down on its own
  // (index-health.ts) while ingest goes on.
  const health = new HealthState({
    "": "NOT_SERVING",
    [IngestService.typeName]: "SERVING",
    [QueryService.typeName]: "SERVING",
    [AdminService.typeName]: "SERVING",
  });
  const search = await startSearch(config, pool, readPool, log, health, metrics);
  const backend = tracedBackend(search.backend);
  // The live tail: one commit listener and one fan-out per replica.
  const tailFeed: TailFeed = new TailFeed(reader, log.child({ component: "tail" }), {
    batchSize: TAIL_BATCH_EVENTS,
    bufferLimit: config.tailBufferEvents,
    pollMs: TAIL_POLL_MS,
    listen: () => commitListener.start(),
  });
  const commitListener = new CommitListener({ connectionString: config.databaseUrl }, log.child({ component: "tail" }), (heads) =>
    tailFeed.onCommit(heads),
  );
  const tail = { feed: tailFeed, heartbeatMs: config.tailHeartbeatMs };
  // Ingest from RabbitMQ when configured: the same validation and group commit as the API.
  // amqplib and the consumer are loaded only then, like the archive's S3 client below.
  const amqpIngest = config.amqpUrl
    ? new (await import("./services/amqp/ingest-consumer.ts")).AmqpIngestConsumer({
        url: config.amqpUrl,
        bindings: config.amqpQueues,
        prefetch: config.amqpPrefetch,
        ingest: { validator, committer, log, protect: protection.forIngest },
        auth,
        tenants: tenantStatus,
        log: log.child({ component: "amqp" }),
      })
    : null;
  // Signed checkpoints and export manifests (docs/HASH_CHAIN.md), when a key is configured.
  const checkpointKey = config.checkpointKeyFile ? signingKeyFromPem(readFileSync(config.checkpointKeyFile, "utf8")) : null;
  const checkpoints = { store: new CheckpointStore(pool, readPool), key: checkpointKey };
  const checkpointSchedule = checkpointKey
    ? new CheckpointSchedule(checkpoints.store, checkpointKey, log.child({ component: "checkpoints" }))
    : null;
  // Data lifecycle (docs/ARCHITECTURE.md): retention rounds, archives, erasure.
  const archive = config.archive ? new (await import("./archive/object-store.ts")).ArchiveStore(config.archive) : null;
  const retention = new RetentionStore(pool);
  const lifecycleDeps = { pool, store: retention, archive, search: search.lifecycle ?? null, signingKey: checkpointKey ?? undefined };
  const erasure = new Erasure(lifecycleDeps);
  const retentionJob = new RetentionJob({ ...lifecycleDeps, log });
  const restore = new ArchiveRestore(lifecycleDeps);

  const server = await startHttpServer({
    host: config.host,
    port: config.port,
    routes: (router) => {
      const ingest = ingestService({ validator, committer, log, limiter: ingestLimiter, protect: protection.forIngest });
      router.service(IngestService, ingest);
      // Binary requests: events read with their open content still encoded (src/server/binary-twin.ts).
      router.rpc(binaryTwin(IngestService.method.append, AppendRequestWireSchema), ingest.append as never);
      router.rpc(binaryTwin(IngestService.method.ingest, IngestRequestWireSchema), ingest.ingest as never);
      const archivedChain = archive ? verifyArchivedChain.bind(null, archive) : undefined;
      router.service(
        QueryService,
        queryService({ validator, reader, backend, limiter: readLimiter, tail, checkpoints, protection, archivedChain }),
      );
      router.service(
        AdminService,
        adminService({
          validator,
          tenants,
          keys,
          auth,
          tenantStatus,
          deleteSearchDocuments: search.deleteTenantDocuments,
          tenantArchive: archive ? new TenantArchive(pool, archive) : undefined,
          dataProtection: { masking, dataKeys },
          dataLifecycle: { retention, erasure, restore, archiveConfigured: archive !== null, submit: (items) => committer.submit(items) },
          log: log.child({ component: "admin" }),
        }),
      );
    },
    // A caller refused over and over gets its further refusals late (a held answer costs a timer, not CPU).
    observers: [
      refusalTarpitInterceptor(
        new RefusalTarpit({ freePerSecond: config.refusalFreePerSecond, delayMs: config.refusalDelayMs }),
        tarpitCaller,
      ),
    ],
    // The request check after auth: an unauthenticated caller learns nothing about its request.
    // The access audit outside auth, so that it sees refusals too.
    interceptors: [
      errorsInterceptor(),
      ...(accessAudit ? [accessAuditInterceptor(accessAudit)] : []),
      authInterceptor(auth, tenantStatus),
      limits,
      requestCheckInterceptor(),
    ],
    // The live tail sends the same events to every subscriber: compressed per stream, they cost more CPU than any other part of its fan-out.
    uncompressedResponses: [`${QueryService.typeName}/${QueryService.method.tailEvents.name}`],
    // An Append over its ingest rate is refused from its headers, before its body is decoded.
    requestGate: ingestRateGate({ auth, tenants: tenantStatus, limiter: ingestLimiter }),
    // The export endpoint, then the web console's files (console/dist) at / (docs/CONSOLE.md).
    httpRoutes: chainHttpRoutes(
      exportHttpHandler({
        auth,
        backend,
        validator,
        log,
        limiter: readLimiter,
        limits: limitSet,
        accessAudit,
        tenantStatus,
        checkpointKey,
        protection,
      }),
      checkpointKeyHandler(checkpointKey?.publicKey ?? null),
      staticFilesHandler({ root: CONSOLE_DIR, reservedPrefixes: ["/v1/", "/auditlog.", "/grpc.", "/healthz", "/metrics"] }),
    ),
    allowedOrigins: config.corsOrigins,
    health,
    maxMessageBytes: config.maxMessageBytes,
    metrics,
    metricsEndpoint: config.telemetry.metricsEnabled,
    metricsToken: config.telemetry.metricsToken,
    headersTimeoutMs: config.headersTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    tls: config.tls ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } : undefined,
    log,
  });
  health.set("", "SERVING");
  amqpIngest?.start();
  if (checkpointSchedule && config.checkpointIntervalMs > 0) checkpointSchedule.start(config.checkpointIntervalMs);
  if (config.retentionIntervalMs > 0) retentionJob.runPeriodically(config.retentionIntervalMs);

  let closing: Promise<void> | null = null;
  return {
    url: server.url,
    port: server.port,
    pool,
    readPool,
    backend: search.backend,
    indexer: search.indexer,
    reconciler: search.reconciler,
    close() {
      closing ??= (async () => {
        clearInterval(partitionTimer);
        clearInterval(statisticsTimer);
        health.shutdown();
        // In-flight streams finish (their events are committed), then what is
        // still queued is flushed, then the pool goes.
        tailFeed.close();
        await commitListener.stop();
        await server.close(config.shutdownGraceMs);
        await accessAudit?.close();
        await checkpointSchedule?.stop();
        await retentionJob.stop();
        archive?.close();
        // Messages in flight commit and are acked before the group commit closes.
        await amqpIngest?.close();
        await committer.close();
        await search.close();
        await pool.end();
        await readPool.end();
      })();
      return closing;
    },
  };
}
