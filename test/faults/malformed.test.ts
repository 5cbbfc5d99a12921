// Fault 5 (long form): AUDITLOG_FAULT_MALFORMED_REQUESTS malformed requests
// (default 10,000) while a correct producer appends. Every correct request
// succeeds, the server stays up, and no client mistake is answered INTERNAL;
// the client mistakes of issue 9 are answered INVALID_ARGUMENT (or NOT_FOUND).
import { describe, expect, it } from "vitest";
import { envInt } from "./harness.ts";
import { runMalformed } from "./malformed-scenario.ts";

const COUNT = envInt("AUDITLOG_FAULT_MALFORMED_REQUESTS", 10_000);

describe("fault: malformed requests", () => {
  it(`answers ${COUNT} malformed requests with proper errors while serving a correct producer`, async () => {
    const r = await runMalformed({ count: COUNT, maxSeconds: 600 });
    expect(r.badRequests).toBe(COUNT);
    expect(r.serverAlive).toBe(true);
    expect(r.producerCodes).toEqual({ "connect:ok": expect.any(Number) });
    expect(r.anomalies).toEqual([]);
    expect(r.acknowledged).toBe(r.sent);
    expect(r.lost).toBe(0);
    expect(r.duplicated).toBe(0);
    expect(r.forbidden, JSON.stringify({ distribution: r.distribution, samples: r.samples }, null, 1)).toEqual({});
    // Issue 9: every client mistake in the mix was sent and answered
    // INVALID_ARGUMENT (or NOT_FOUND), none INTERNAL.
    expect(r.mistakesSent).toBeGreaterThan(0);
    expect(r.mistakesMisanswered, JSON.stringify({ samples: r.samples }, null, 1)).toEqual({});
    // Issue 11: no connection is left hanging, whatever it sent.
    expect(r.garbageLeftOpen).toBe(0);
  });
});
