// Fault 2: the service runs on an embedded PostgreSQL of its own; during
// ingest PostgreSQL is stopped and, a few seconds later, started again on the
// same port and data directory. Clients see UNAVAILABLE, retry with the same
// ids, and nothing is lost or doubled; the service recovers without a restart.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../src/devservers/embedded-postgres.ts";
import { type ChildService, startChildService } from "../support/child-service.ts";
import { loadAuditlogStubs, newClient } from "../../scripts/lib/grpc-client.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys } from "../support/service.ts";
import {
  appendProducer,
  envInt,
  freePort,
  ingestStreamProducer,
  newStats,
  printReport,
  sleep,
  storedStats,
  type Target,
  verifyChain,
} from "./harness.ts";

const DOWN_SECONDS = envInt("AUDITLOG_PG_DOWN_SECONDS", 5);

describe("fault: PostgreSQL restart during ingest", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "auditlog-fault-pg-"));
  chmodSync(dataDir, 0o755); // as root, PostgreSQL runs as the postgres OS user, which must enter it
  let pgServer: EmbeddedPostgres | null = null;
  let svc: ChildService | null = null;
  let target: Target | null = null;

  afterAll(async () => {
    target?.grpcClient?.close();
    await svc?.kill("SIGKILL");
    await pgServer?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(`loses and doubles nothing when PostgreSQL is down for ${DOWN_SECONDS} s`, async () => {
    const port = await freePort();
    const start = () => startEmbeddedPostgres({ dataDir: join(dataDir, "pg"), port, database: "auditlog", settings: { fsync: "off" } });
    const dbg = (m: string) => process.stderr.write(`[fault-pg] ${m}\n`);
    dbg(`starting PostgreSQL on ${port}`);
    pgServer = await start();
    dbg("PostgreSQL up");
    const url = pgServer.url;
    svc = await startChildService({ DATABASE_URL: url, AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY, ELASTICSEARCH_URL: "" });
    const tenantId = "pgrestart";
    const keys = await createTenantWithKeys(svc.url, tenantId);
    target = { url: svc.url, ingestKey: keys.ingest, grpcClient: newClient(loadAuditlogStubs().IngestService, svc.url), generation: 1 };

    const stats = newStats();
    let stopNew = false;
    const deadline = Date.now() + 180_000;
    const child = svc;
    const died = () => child.proc.exitCode !== null || child.proc.signalCode !== null;
    const ctl = { stopNew: () => stopNew, giveUp: () => Date.now() > deadline || died(), target: () => target };
    const producers = [
      ...Array.from({ length: 3 }, (_, i) => appendProducer(`a${i}`, tenantId, 50, stats, ctl, { pauseMs: 20 })),
      ...Array.from({ length: 2 }, (_, i) => ingestStreamProducer(`s${i}`, tenantId, 5, 100, stats, ctl, { gapMs: 20 })),
    ];
    dbg("service up, ingesting");
    await sleep(2000);
    dbg(`stopping PostgreSQL (acked ${stats.acked.size})`);
    const ackedBeforeStop = stats.acked.size;
    await pgServer.stop();
    pgServer = null;
    const downSince = Date.now();
    await sleep(DOWN_SECONDS * 1000);
    const codesWhileDown = Object.fromEntries(stats.codes);
    dbg(`starting PostgreSQL again (codes so far ${JSON.stringify(codesWhileDown)})`);
    pgServer = await start();
    dbg("PostgreSQL up again");
    const downMs = Date.now() - downSince;
    // The service, never restarted, must acknowledge new batches again.
    const ackedAtRestart = stats.acked.size;
    const recoverBy = Date.now() + 60_000;
    while (stats.acked.size < ackedAtRestart + 500 && Date.now() < recoverBy && !died()) await sleep(100);
    if (died()) {
      stopNew = true;
      await Promise.all(producers);
      const out = child.output().split("\n").slice(-40).join("\n");
      process.stderr.write(
        `[fault-pg] THE SERVICE DIED (exit ${child.proc.exitCode}, signal ${child.proc.signalCode}); its last output:\n${out}\n`,
      );
      printReport(
        { fault: "postgres-restart", sent: stats.sent.size, acknowledged: stats.acked.size, stored: -1, duplicated: -1, lost: -1 },
        "service_died=true",
      );
      expect.fail(`the service exited (code ${child.proc.exitCode}) when PostgreSQL was stopped; last output:\n${out}`);
    }
    const recoveredMs = Date.now() - downSince - downMs;
    stopNew = true;
    await Promise.all(producers);

    const pool = new pg.Pool({ connectionString: url, max: 2 });
    try {
      const s = await storedStats(pool, tenantId, stats.acked);
      const chain = await verifyChain(svc.url, keys.query);
      const codes = Object.fromEntries(stats.codes);
      printReport(
        {
          fault: "postgres-restart",
          sent: stats.sent.size,
          acknowledged: stats.acked.size,
          stored: s.stored,
          duplicated: s.duplicated,
          lost: s.lost,
        },
        `down_ms=${downMs} recovered_after_restart_ms=${recoveredMs} chain_ok=${chain.ok}`,
      );
      console.log(`postgres-restart: codes seen ${JSON.stringify(codes)}; while down ${JSON.stringify(codesWhileDown)}`);
      process.stderr.write(`postgres-restart: codes seen ${JSON.stringify(codes)}\n`);

      expect(svc.proc.exitCode).toBeNull(); // never restarted
      expect(ackedBeforeStop).toBeGreaterThan(0);
      expect(stats.acked.size).toBeGreaterThan(ackedAtRestart); // recovered
      // Clients saw UNAVAILABLE (Connect: "unavailable", gRPC: 14), and nothing else but OK.
      expect(codes["connect:unavailable"] ?? 0).toBeGreaterThan(0);
      expect(codes["grpc:14"] ?? 0).toBeGreaterThan(0);
      const unexpected = Object.keys(codes).filter((c) => !["connect:ok", "grpc:0", "connect:unavailable", "grpc:14"].includes(c));
      expect(unexpected, JSON.stringify(codes)).toEqual([]);
      expect(stats.anomalies).toEqual([]);
      expect(stats.acked.size).toBe(stats.sent.size);
      expect(s.lostIds).toEqual([]);
      expect(s.duplicated).toBe(0);
      expect(s.stored).toBe(stats.acked.size);
      expect(chain.ok, JSON.stringify(chain.body)).toBe(true);
    } finally {
      await pool.end();
    }
  });
});
