// Fault 1: kill -9 of the server in the middle of grpc-js Ingest streams and
// Connect Append loops, `kills` times in a row, restarting it on the same
// database each time. Producers resend unacknowledged batches with the same
// ids. Run by test/faults/kill-9.test.ts, with the number of kills as a
// parameter.
import pg from "pg";
import { type ChildService, startChildService } from "../support/child-service.ts";
import { freshDatabase } from "../support/db.ts";
import { loadAuditlogStubs, newClient } from "../../scripts/lib/grpc-client.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys } from "../support/service.ts";
import {
  appendProducer,
  type FaultReport,
  ingestStreamProducer,
  newStats,
  printReport,
  sleep,
  storedStats,
  type Target,
  verifyChain,
} from "./harness.ts";

export type Kill9Result = FaultReport & {
  kills: number;
  killedBySignal: number;
  chain: { ok: boolean; checked: string; body: unknown };
  anomalies: string[];
  codes: Record<string, number>;
  lostIds: string[];
  finalAppendOk: boolean;
};

export async function runKill9(opts: { kills: number; streams?: number; appenders?: number; maxSeconds?: number }): Promise<Kill9Result> {
  const tenantId = "kill9";
  const db = await freshDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  const stubs = loadAuditlogStubs();
  const env = { DATABASE_URL: db.url, AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY, AUDITLOG_SHUTDOWN_GRACE_MS: "1000", ELASTICSEARCH_URL: "" };
  let svc: ChildService | null = null;
  let current: Target | null = null;
  let generation = 0;
  const stats = newStats();
  let stopNew = false;
  let giveUp = false;
  const deadline = Date.now() + (opts.maxSeconds ?? 600) * 1000;
  const up = async () => {
    svc = await startChildService(env);
    return svc;
  };
  try {
    const first = await up();
    const keys = await createTenantWithKeys(first.url, tenantId);
    const setTarget = (s: ChildService) => {
      current?.grpcClient?.close();
      current = { url: s.url, ingestKey: keys.ingest, grpcClient: newClient(stubs.IngestService, s.url), generation: ++generation };
    };
    setTarget(first);
    const ctl = { stopNew: () => stopNew, giveUp: () => giveUp || Date.now() > deadline, target: () => current };
    const producers = [
      ...Array.from({ length: opts.streams ?? 3 }, (_, i) => ingestStreamProducer(`s${i}`, tenantId, 8, 100, stats, ctl, { gapMs: 20 })),
      ...Array.from({ length: opts.appenders ?? 3 }, (_, i) => appendProducer(`a${i}`, tenantId, 50, stats, ctl)),
    ];
    let killedBySignal = 0;
    for (let k = 0; k < opts.kills && Date.now() < deadline; k++) {
      // Let traffic run: some batches commit, some streams are half-sent.
      const ackedBefore = stats.acked.size;
      const until = Date.now() + 400 + Math.floor(Math.random() * 800);
      while (Date.now() < until || (stats.acked.size === ackedBefore && Date.now() < until + 5000)) await sleep(50);
      const dying: ChildService = svc!;
      current = null; // producers wait (their in-flight calls fail)
      const code = await dying.kill("SIGKILL");
      if (code === null && dying.proc.signalCode === "SIGKILL") killedBySignal++;
      svc = null;
      setTarget(await up());
    }
    // Stop making new batches; every pending one is retried until acknowledged.
    stopNew = true;
    await Promise.race([Promise.all(producers), sleep(Math.max(1000, deadline - Date.now()))]);
    giveUp = true;
    await Promise.all(producers);

    const finalSvc: ChildService = svc!;
    const chain = await verifyChain(finalSvc.url, keys.query);
    const s = await storedStats(pool, tenantId, stats.acked);
    // The service goes on after all that: a new event is accepted at the next position.
    const { connectCall } = await import("../../scripts/lib/connect-json.ts");
    const { makeEvent, toConnectJson } = await import("../support/events.ts");
    const more = await connectCall<{ summary?: { accepted: string } }>(
      finalSvc.url,
      "auditlog.v1.IngestService/Append",
      { events: [toConnectJson(makeEvent(0, `${tenantId}-final`))] },
      keys.ingest,
    );
    const report: FaultReport = {
      fault: "kill-9",
      sent: stats.sent.size,
      acknowledged: stats.acked.size,
      stored: s.stored,
      duplicated: s.duplicated,
      lost: s.lost,
    };
    const codes = Object.fromEntries(stats.codes);
    printReport(report, `kills=${opts.kills} chain_ok=${chain.ok} checked=${chain.checked} codes=${JSON.stringify(codes)}`);
    return {
      ...report,
      kills: opts.kills,
      killedBySignal,
      chain,
      anomalies: stats.anomalies,
      codes,
      lostIds: s.lostIds,
      finalAppendOk: more.status === 200 && more.body.summary?.accepted === "1",
    };
  } finally {
    giveUp = true;
    (current as Target | null)?.grpcClient?.close();
    await (svc as ChildService | null)?.kill("SIGKILL");
    await pool.end();
    await db.drop();
  }
}
