// kill -9 of the server during ingest loses no acknowledged event; the next
// start recovers and goes on, with an intact hash chain.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChildService, startChildService } from "../support/child-service.ts";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { freshDatabase } from "../support/db.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, type TenantKeys } from "../support/service.ts";
import pg from "pg";

describe("crash recovery", () => {
  let db: { url: string; drop(): Promise<void> };
  let pool: pg.Pool;
  let svc: ChildService | null = null;
  let keys: TenantKeys;

  beforeAll(async () => {
    db = await freshDatabase();
    pool = new pg.Pool({ connectionString: db.url });
  });
  afterAll(async () => {
    await svc?.kill("SIGTERM");
    await pool?.end();
    await db?.drop();
  });

  const env = () => ({ DATABASE_URL: db.url, AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY });

  it("keeps every acknowledged event across kill -9 and continues after restart", async () => {
    svc = await startChildService(env());
    keys = await createTenantWithKeys(svc.url, "crash");
    const acked = new Set<string>();
    let next = 0;
    let stop = false;
    const url = svc.url;
    const producer = async () => {
      while (!stop) {
        const events = Array.from({ length: 50 }, () => makeEvent(next++, "crash"));
        try {
          const r = await connectCall(url, "auditlog.v1.IngestService/Append", { events: events.map(toConnectJson) }, keys.ingest);
          if (r.status === 200) for (const e of events) acked.add(e.id);
        } catch {
          return; // the server died under us: this batch was never acknowledged
        }
      }
    };
    const producers = Array.from({ length: 4 }, producer);
    await new Promise((r) => setTimeout(r, 1500));
    const killedWith = await svc.kill("SIGKILL");
    stop = true;
    await Promise.all(producers);
    svc = null;
    expect(killedWith).toBeNull(); // killed by a signal, no clean exit
    expect(acked.size).toBeGreaterThan(0);

    const stored = new Set(
      (await pool.query<{ event_id: string }>("SELECT event_id FROM event_ids WHERE tenant_id = 'crash'")).rows.map((r) => r.event_id),
    );
    const lost = [...acked].filter((id) => !stored.has(id));
    console.log(`crash: ${next} sent, ${acked.size} acknowledged, ${stored.size} stored, ${lost.length} lost`);
    expect(lost).toEqual([]);
    const rows = await pool.query("SELECT count(*)::int AS n FROM events WHERE tenant_id = 'crash'");
    expect(rows.rows[0].n).toBe(stored.size);

    svc = await startChildService(env());
    const chain = await connectCall<any>(svc.url, "auditlog.v1.QueryService/VerifyChain", {}, keys.query);
    expect(chain.body).toMatchObject({ ok: true, checked: String(stored.size) });
    const more = await connectCall<any>(
      svc.url,
      "auditlog.v1.IngestService/Append",
      { events: [toConnectJson(makeEvent(next, "crash")), toConnectJson(makeEvent(0, "crash"))] },
      keys.ingest,
    );
    expect(more.status).toBe(200);
    expect(more.body.summary).toMatchObject({ accepted: "1", duplicates: "1", position: String(stored.size + 1) });
  });
});
