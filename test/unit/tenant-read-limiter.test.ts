import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TenantBusyError, TenantReadLimiter } from "../../src/services/tenant-read-limiter.ts";

describe("TenantReadLimiter", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("admits up to the limit per tenant, each tenant on its own", async () => {
    const l = new TenantReadLimiter({ perTenant: 2, maxWaitMs: 100 });
    await l.acquire("a");
    await l.acquire("a");
    await l.acquire("b");
    expect(l.active("a")).toBe(2);
    expect(l.active("b")).toBe(1);
  });

  it("refuses a call that waited maxWaitMs without a slot, with a message saying to retry", async () => {
    const l = new TenantReadLimiter({ perTenant: 1, maxWaitMs: 100 });
    await l.acquire("a");
    const waiting = l.acquire("a");
    const outcome = waiting.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    const err = await outcome;
    expect(err).toBeInstanceOf(TenantBusyError);
    expect((err as Error).message).toMatch(/at most 1 per server\); retry/);
    expect(l.active("a")).toBe(1);
  });

  it("hands a released slot to the longest waiter, in order", async () => {
    const l = new TenantReadLimiter({ perTenant: 1, maxWaitMs: 1000 });
    const release = await l.acquire("a");
    const order: string[] = [];
    const first = l.acquire("a").then((r) => (order.push("first"), r));
    const second = l.acquire("a").then((r) => (order.push("second"), r));
    release();
    (await first)();
    (await second)();
    expect(order).toEqual(["first", "second"]);
    expect(l.active("a")).toBe(0);
  });

  it("does not let a newcomer overtake a waiter", async () => {
    const l = new TenantReadLimiter({ perTenant: 1, maxWaitMs: 1000 });
    const release = await l.acquire("a");
    const waiter = l.acquire("a");
    release();
    const late = l.acquire("a").catch((e: unknown) => e);
    await waiter; // holds the slot now
    await vi.advanceTimersByTimeAsync(1000);
    expect(await late).toBeInstanceOf(TenantBusyError);
  });

  it("ignores a second release of the same slot", async () => {
    const l = new TenantReadLimiter({ perTenant: 2, maxWaitMs: 100 });
    const r1 = await l.acquire("a");
    await l.acquire("a");
    r1();
    r1();
    expect(l.active("a")).toBe(1);
  });

  it("stops waiting when the caller aborts, and frees the slot after run() however fn ends", async () => {
    const l = new TenantReadLimiter({ perTenant: 1, maxWaitMs: 1000 });
    const release = await l.acquire("a");
    const abort = new AbortController();
    const waiting = l.acquire("a", abort.signal).catch((e: unknown) => e);
    abort.abort(new Error("client left"));
    expect(((await waiting) as Error).message).toBe("client left");
    release();
    expect(l.active("a")).toBe(0);
    await expect(
      l.run("a", undefined, async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(l.active("a")).toBe(0);
    expect(await l.run("a", undefined, async () => 42)).toBe(42);
  });
});
