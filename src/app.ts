// Wiring: stores -> services -> server. Used by main.ts and by tests that
// run the whole service in-process.
import { createValidator } from "@bufbuild/protovalidate";
import pg from "pg";
import { AdminService } from "../gen/auditlog/v1/admin_pb.js";
import { IngestService } from "../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../gen/auditlog/v1/query_pb.js";
import { Authenticator } from "./auth/authenticator.ts";
import { authInterceptor } from "./auth/auth-interceptor.ts";
import type { Config } from "./config.ts";
import { HealthState } from "./server/health.ts";
import { startHttpServer } from "./server/http-server.ts";
import type { Logger } from "./server/log.ts";
import { adminService } from "./services/admin-service.ts";
import { ingestService } from "./services/ingest-service.ts";
import { queryService } from "./services/query-service.ts";
import { ApiKeyStore } from "./store/api-key-store.ts";
import { EventReader } from "./store/event-reader.ts";
import { type WriteItem, type WriteResult, writeBatch } from "./store/event-writer.ts";
import { GroupCommitter } from "./store/group-commit.ts";
import { migrate } from "./store/migrate.ts";
import { ensurePartitions } from "./store/partitions.ts";
import { TenantStore } from "./store/tenant-store.ts";

export type App = { url: string; port: number; pool: pg.Pool; close(): Promise<void> };

const PARTITION_CHECK_MS = 60 * 60 * 1000;

export async function startApp(config: Config & { databaseUrl: string }, log: Logger): Promise<App> {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.pgPoolSize });
  // An idle client's error (e.g. PostgreSQL restarting) must not crash the process.
  pool.on("error", (err) => log.warn("idle PostgreSQL connection failed", { err: err.message }));
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

  const validator = createValidator();
  const keys = new ApiKeyStore(pool);
  const tenants = new TenantStore(pool);
  const auth = new Authenticator(keys, config.bootstrapKey, config.keyCacheMs);
  const committer = new GroupCommitter<WriteItem, WriteResult>((items) => writeBatch(pool, items), {
    maxBatchEvents: config.batchMaxEvents,
    maxPendingEvents: config.maxPendingEvents,
  });
  const reader = new EventReader(pool);
  const health = new HealthState();

  const server = await startHttpServer({
    host: config.host,
    port: config.port,
    routes: (router) => {
      router.service(IngestService, ingestService({ validator, committer, log }));
      router.service(QueryService, queryService({ validator, reader }));
      router.service(AdminService, adminService({ validator, tenants, keys, auth }));
    },
    interceptors: [authInterceptor(auth)],
    allowedOrigins: config.corsOrigins,
    health,
    maxMessageBytes: config.maxMessageBytes,
    log,
  });
  health.set("", "SERVING");

  let closing: Promise<void> | null = null;
  return {
    url: server.url,
    port: server.port,
    pool,
    close() {
      closing ??= (async () => {
        clearInterval(partitionTimer);
        health.shutdown();
        // In-flight streams finish (their events are committed), then what is
        // still queued is flushed, then the pool goes.
        await server.close(config.shutdownGraceMs);
        await committer.close();
        await pool.end();
      })();
      return closing;
    },
  };
}
