// Fault 1 (long form): kill -9 of the server mid-stream, AUDITLOG_FAULT_KILLS
// times in a row (default 20), restarting it on the same database each time.
// Every acknowledged id is stored exactly once and the hash chain verifies.
import { describe, expect, it } from "vitest";
import { envInt } from "./harness.ts";
import { runKill9 } from "./kill-9-scenario.ts";

const KILLS = envInt("AUDITLOG_FAULT_KILLS", 20);

describe("fault: kill -9 during ingest", () => {
  it(`loses and doubles nothing over ${KILLS} kills`, async () => {
    const r = await runKill9({ kills: KILLS, maxSeconds: 120 + KILLS * 20 });
    expect(r.anomalies).toEqual([]);
    expect(r.killedBySignal).toBe(KILLS);
    expect(r.acknowledged).toBeGreaterThan(0);
    expect(r.lostIds).toEqual([]);
    expect(r.lost).toBe(0);
    expect(r.duplicated).toBe(0);
    // Producers finished: everything they sent was acknowledged in the end, and stored once.
    expect(r.acknowledged).toBe(r.sent);
    expect(r.stored).toBe(r.acknowledged);
    expect(r.chain.ok, JSON.stringify(r.chain.body)).toBe(true);
    expect(r.chain.checked).toBe(String(r.stored));
    expect(r.finalAppendOk).toBe(true);
  });
});
