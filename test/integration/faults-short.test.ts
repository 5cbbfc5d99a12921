// Short forms of two fault tests (the long ones are test/faults/*, run with
// `npm run test:faults`): kill -9 three times during ingest, and 1,000
// malformed requests beside a correct producer.
import { describe, expect, it } from "vitest";
import { runKill9 } from "../faults/kill-9-scenario.ts";
import { runMalformed } from "../faults/malformed-scenario.ts";

describe("faults, short form", () => {
  it("kill -9 three times during ingest: nothing lost or doubled, chain intact", { timeout: 240_000 }, async () => {
    const r = await runKill9({ kills: 3, streams: 2, appenders: 2, maxSeconds: 180 });
    expect(r.anomalies).toEqual([]);
    expect(r.killedBySignal).toBe(3);
    expect(r.acknowledged).toBeGreaterThan(0);
    expect(r.lostIds).toEqual([]);
    expect(r.duplicated).toBe(0);
    expect(r.acknowledged).toBe(r.sent);
    expect(r.stored).toBe(r.acknowledged);
    expect(r.chain.ok, JSON.stringify(r.chain.body)).toBe(true);
    expect(r.finalAppendOk).toBe(true);
  });

  it("1,000 malformed requests: proper errors, the correct producer is served, the server stays up", { timeout: 180_000 }, async () => {
    const r = await runMalformed({ count: 1000, maxSeconds: 120 });
    expect(r.badRequests).toBe(1000);
    expect(r.serverAlive).toBe(true);
    expect(r.producerCodes).toEqual({ "connect:ok": expect.any(Number) });
    expect(r.anomalies).toEqual([]);
    expect(r.acknowledged).toBe(r.sent);
    expect(r.lost).toBe(0);
    expect(r.duplicated).toBe(0);
    expect(r.forbidden, JSON.stringify({ distribution: r.distribution, samples: r.samples }, null, 1)).toEqual({});
  });
});
