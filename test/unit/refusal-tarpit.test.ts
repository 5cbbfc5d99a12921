// The refusal tarpit (src/server/refusal-tarpit.ts): which refusals count,
// per caller and per second, and that a delayed refusal is still the
// call's own error, answered late (or at once when the caller leaves).
import { Code, ConnectError, createContextKey, createContextValues, type UnaryRequest } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RefusalTarpit, refusalTarpitInterceptor } from "../../src/server/refusal-tarpit.ts";

describe("RefusalTarpit", () => {
  it("answers a burst of freePerSecond refusals at once and delays the rest, per caller", () => {
    const t = new RefusalTarpit({ freePerSecond: 3, delayMs: 250, random: () => 0 });
    expect([1, 2, 3, 4, 5].map(() => t.refused("a", 1000))).toEqual([0, 0, 0, 250, 250]);
    expect(t.refused("b", 1100)).toBe(0);
    // A second later the bucket is full again.
    expect([1, 2, 3, 4].map(() => t.refused("a", 2000))).toEqual([0, 0, 0, 250]);
    expect(t.delayed).toBe(3);
  });

  it("frees refusals as the bucket refills, not all at the start of a second", () => {
    const t = new RefusalTarpit({ freePerSecond: 4, delayMs: 100, random: () => 0 });
    for (let i = 0; i < 4; i++) t.refused("a", 0);
    expect(t.refused("a", 200)).toBe(100); // 0.8 of a refusal earned
    expect(t.refused("a", 250)).toBe(0); // one earned by 250 ms
    expect(t.refused("a", 260)).toBe(100);
    expect(t.refused("a", 500)).toBe(0);
    // A clock that steps back neither refills nor drains the bucket.
    expect(t.refused("a", 100)).toBe(100);
    expect(t.refused("a", 750)).toBe(0);
  });

  it("spreads the delays over delayMs to 1.5 times it", () => {
    const at = (r: number) => new RefusalTarpit({ freePerSecond: 0, delayMs: 500, random: () => r }).refused("a", 0);
    expect([at(0), at(0.5), at(0.999)]).toEqual([500, 625, 749]);
    const spread = new Set(Array.from({ length: 50 }, () => new RefusalTarpit({ freePerSecond: 0, delayMs: 500 }).refused("a", 0)));
    for (const d of spread) expect(d >= 500 && d < 750).toBe(true);
    expect(spread.size).toBeGreaterThan(1);
  });

  it("never delays with delayMs 0, nor new callers past maxCallers (until old windows expire)", () => {
    expect(new RefusalTarpit({ freePerSecond: 0, delayMs: 0 }).refused("a", 0)).toBe(0);
    const t = new RefusalTarpit({ freePerSecond: 0, delayMs: 100, maxCallers: 1, random: () => 0 });
    expect(t.refused("a", 0)).toBe(100);
    expect(t.refused("b", 500)).toBe(0);
    expect(t.refused("b", 1000)).toBe(100);
  });
});

describe("refusalTarpitInterceptor", () => {
  const callerKey = createContextKey<string | null>(null);
  const request = (caller: string | null, signal = new AbortController().signal) => {
    const values = createContextValues();
    values.set(callerKey, caller);
    return { signal, contextValues: values } as unknown as UnaryRequest;
  };
  const failing = (err: unknown) => async () => {
    throw err;
  };
  const interceptor = (t: RefusalTarpit) => refusalTarpitInterceptor(t, (v) => v.get(callerKey));

  it("delays a caller's refusals past the free ones and rethrows the call's own error", async () => {
    const t = new RefusalTarpit({ freePerSecond: 1, delayMs: 200 });
    const err = new ConnectError("bad query", Code.InvalidArgument);
    const call = interceptor(t)(failing(err) as never);
    await expect(call(request("k"))).rejects.toBe(err);
    const started = performance.now();
    await expect(call(request("k"))).rejects.toBe(err);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });

  it("does not count the service's own failures, successes or callers it cannot name", async () => {
    const t = new RefusalTarpit({ freePerSecond: 0, delayMs: 60_000 });
    await expect(interceptor(t)(failing(new ConnectError("down", Code.Unavailable)) as never)(request("k"))).rejects.toThrow("down");
    await expect(interceptor(t)(failing(new Error("plain")) as never)(request("k"))).rejects.toThrow("plain");
    await expect(interceptor(t)(failing(new ConnectError("no", Code.PermissionDenied)) as never)(request(null))).rejects.toThrow("no");
    const ok = { message: "ok" };
    await expect(interceptor(t)((async () => ok) as never)(request("k"))).resolves.toBe(ok);
    expect(t.delayed).toBe(0);
  });

  it("answers at once when the caller goes away while its refusal is held", async () => {
    const t = new RefusalTarpit({ freePerSecond: 0, delayMs: 60_000 });
    const leave = new AbortController();
    const held = interceptor(t)(failing(new ConnectError("over", Code.ResourceExhausted)) as never)(request("k", leave.signal));
    leave.abort();
    await expect(held).rejects.toThrow("over");
    expect(t.delayed).toBe(1);
  });
});
