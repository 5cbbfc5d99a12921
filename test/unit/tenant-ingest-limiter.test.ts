// TenantIngestLimiter: unary admission with the retry delay in the message,
// waiting admission for streams (with a fake clock and sleep), oversized
// batches, no limit at rate 0, and idle tenants forgotten.
import { describe, expect, it } from "vitest";
import { TenantIngestLimitError, TenantIngestLimiter } from "../../src/services/tenant-ingest-limiter.ts";

function limiter(ratePerSecond: number, burst: number) {
  const clock = { t: 0 };
  const slept: number[] = [];
  const l = new TenantIngestLimiter({
    ratePerSecond,
    burst,
    now: () => clock.t,
    sleep: async (ms) => {
      slept.push(ms);
      clock.t += ms;
    },
  });
  return { l, clock, slept };
}

function thrown(fn: () => unknown): TenantIngestLimitError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TenantIngestLimitError) return err;
    throw err;
  }
  throw new Error("expected TenantIngestLimitError");
}

describe("TenantIngestLimiter", () => {
  it("admits up to the burst, then refuses saying when to retry", () => {
    const { l } = limiter(2500, 2500);
    l.admit("noisy", 1000);
    l.admit("noisy", 1000);
    const err = thrown(() => l.admit("noisy", 1000));
    expect(err.retryAfterMs).toBe(200);
    expect(err.message).toMatch(/2500 events\/s per server.*retry after 0\.2 s/);
    l.admit("quiet", 1000); // another tenant is not affected
  });

  it("rounds the retry delay up, never to 0.0 s", () => {
    const { l } = limiter(1_000_000, 1000);
    l.admit("t", 1000);
    expect(thrown(() => l.admit("t", 1)).message).toMatch(/retry after 0\.1 s/);
  });

  it("says a batch larger than the burst can never be accepted", () => {
    const { l } = limiter(100, 500);
    const err = thrown(() => l.admit("t", 1000));
    expect(err.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    expect(err.message).toMatch(
      /1000 events in one message exceed .*\(500 events per server\).* never be accepted at once; send at most 500/,
    );
  });

  it("lets a stream wait for its tokens within the bound", async () => {
    const { l, slept } = limiter(1000, 1000);
    await l.admitWaiting("t", 1000, 2000);
    await l.admitWaiting("t", 500, 2000);
    expect(slept).toEqual([500]);
  });

  it("refuses a stream's message at once when its tokens come later than the bound", async () => {
    const { l, slept } = limiter(100, 1000);
    await l.admitWaiting("t", 1000, 2000);
    await expect(l.admitWaiting("t", 1000, 2000)).rejects.toMatchObject({ name: "TenantIngestLimitError", retryAfterMs: 10_000 });
    expect(slept).toEqual([]);
  });

  it("stops waiting when the call is aborted", async () => {
    const l = new TenantIngestLimiter({ ratePerSecond: 1, burst: 10 });
    l.admit("t", 10);
    const ac = new AbortController();
    const waiting = l.admitWaiting("t", 1, 5000, ac.signal);
    ac.abort(new Error("client went away"));
    await expect(waiting).rejects.toThrow("client went away");
  });

  it("limits nothing at rate 0", async () => {
    const { l } = limiter(0, 1);
    for (let i = 0; i < 100; i++) l.admit("t", 1000);
    await l.admitWaiting("t", 1000, 0);
    expect(l.tracked).toBe(0);
  });

  it("forgets tenants idle long enough to have refilled", () => {
    const { l, clock } = limiter(1000, 1000);
    for (let i = 0; i < 500; i++) l.admit(`tenant-${i}`, 10);
    expect(l.tracked).toBe(500);
    clock.t = 2_000;
    l.admit("again", 10);
    expect(l.tracked).toBe(1);
  });
});
