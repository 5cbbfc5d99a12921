// RateLimiter: per-tenant and per-key buckets (fake clock and sleep): unary
// admission with the retry delay (as a field and in the message), the
// slower of the two limits deciding, nothing spent when refused, waiting
// admission for streams, oversized batches, no limit at rate 0, idle
// tenants and keys forgotten.
import { describe, expect, it } from "vitest";
import { type RateLimit, RateLimitError, RateLimiter } from "../../src/services/rate-limiter.ts";

const NONE: RateLimit = { ratePerSecond: 0, burst: 1 };

function limiter(perTenant: RateLimit, perKey: RateLimit = NONE) {
  const clock = { t: 0 };
  const slept: number[] = [];
  const l = new RateLimiter({
    work: "ingest",
    unit: "events",
    perTenant,
    perKey,
    now: () => clock.t,
    sleep: async (ms: number) => {
      slept.push(ms);
      clock.t += ms;
    },
  });
  return { l, clock, slept };
}

const tenantLimiter = (ratePerSecond: number, burst: number) => limiter({ ratePerSecond, burst });
const as = (tenantId: string, key = `key:${tenantId}`) => ({ tenantId, key });

function thrown(fn: () => unknown): RateLimitError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RateLimitError) return err;
    throw err;
  }
  throw new Error("expected RateLimitError");
}

describe("RateLimiter per tenant", () => {
  it("admits up to the burst, then refuses saying when to retry", () => {
    const { l } = tenantLimiter(2500, 2500);
    l.admit(as("noisy"), 1000);
    l.admit(as("noisy"), 1000);
    const err = thrown(() => l.admit(as("noisy"), 1000));
    expect(err.retryAfterMs).toBe(200);
    expect(err.scope).toBe("tenant");
    expect(err.message).toMatch(/^this tenant is over its ingest rate \(2500 events\/s per server.*retry after 0\.2 s/);
    l.admit(as("quiet"), 1000); // another tenant is not affected
  });

  it("counts every key of a tenant against the tenant's bucket", () => {
    const { l } = tenantLimiter(100, 100);
    l.admit(as("t", "key:a"), 60);
    const err = thrown(() => l.admit(as("t", "key:b"), 60));
    expect(err.scope).toBe("tenant");
    expect(err.retryAfterMs).toBe(200);
  });

  it("rounds the retry delay up, never to 0.0 s", () => {
    const { l } = tenantLimiter(1_000_000, 1000);
    l.admit(as("t"), 1000);
    expect(thrown(() => l.admit(as("t"), 1)).message).toMatch(/retry after 0\.1 s/);
  });

  it("says a batch larger than the burst can never be accepted", () => {
    const { l } = tenantLimiter(100, 500);
    const err = thrown(() => l.admit(as("t"), 1000));
    expect(err.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    expect(err.message).toMatch(
      /1000 events in one message exceed this tenant's largest ingest burst \(500 events per server\).* never be accepted at once; send at most 500/,
    );
  });

  it("lets a stream wait for its tokens within the bound", async () => {
    const { l, slept } = tenantLimiter(1000, 1000);
    await l.admitWaiting(as("t"), 1000, 2000);
    await l.admitWaiting(as("t"), 500, 2000);
    expect(slept).toEqual([500]);
  });

  it("refuses a stream's message at once when its tokens come later than the bound", async () => {
    const { l, slept } = tenantLimiter(100, 1000);
    await l.admitWaiting(as("t"), 1000, 2000);
    await expect(l.admitWaiting(as("t"), 1000, 2000)).rejects.toMatchObject({ name: "RateLimitError", retryAfterMs: 10_000 });
    expect(slept).toEqual([]);
  });

  it("stops waiting when the call is aborted", async () => {
    const l = new RateLimiter({ work: "ingest", unit: "events", perTenant: { ratePerSecond: 1, burst: 10 }, perKey: NONE });
    l.admit(as("t"), 10);
    const ac = new AbortController();
    const waiting = l.admitWaiting(as("t"), 1, 5000, ac.signal);
    ac.abort(new Error("client went away"));
    await expect(waiting).rejects.toThrow("client went away");
  });

  it("limits nothing at rate 0", async () => {
    const { l } = limiter(NONE, NONE);
    expect(l.limited).toBe(false);
    for (let i = 0; i < 100; i++) l.admit(as("t"), 1000);
    await l.admitWaiting(as("t"), 1000, 0);
    expect(l.tracked).toBe(0);
  });

  it("forgets tenants idle long enough to have refilled", () => {
    const { l, clock } = tenantLimiter(1000, 1000);
    for (let i = 0; i < 500; i++) l.admit(as(`tenant-${i}`), 10);
    expect(l.tracked).toBe(500);
    clock.t = 2_000;
    l.admit(as("again"), 10);
    expect(l.tracked).toBe(1);
  });
});

describe("RateLimiter per key", () => {
  it("refuses one key over its rate while another key of the same tenant goes on", () => {
    const { l } = limiter(NONE, { ratePerSecond: 10, burst: 20 });
    l.admit(as("t", "key:a"), 20);
    const err = thrown(() => l.admit(as("t", "key:a"), 5));
    expect(err.scope).toBe("key");
    expect(err.retryAfterMs).toBe(500);
    expect(err.message).toMatch(
      /^this API key is over its ingest rate \(10 events\/s per server, bursts of up to 20\); retry after 0\.5 s/,
    );
    l.admit(as("t", "key:b"), 20);
  });

  it("spends from neither bucket when one refuses, and answers with the one that frees up last", () => {
    const { l, clock } = limiter({ ratePerSecond: 100, burst: 100 }, { ratePerSecond: 10, burst: 50 });
    l.admit(as("t", "key:a"), 50); // tenant 50 left, key 0 left
    const err = thrown(() => l.admit(as("t", "key:a"), 10));
    expect(err.scope).toBe("key");
    expect(err.retryAfterMs).toBe(1000);
    // The refused call spent nothing of the tenant's: another key still gets the 50 left.
    l.admit(as("t", "key:b"), 50);
    // Both are empty now: 10 tokens come back to the tenant in 0.1 s, to the key in 1 s.
    expect(thrown(() => l.admit(as("t", "key:a"), 10)).scope).toBe("key");
    clock.t = 1000;
    l.admit(as("t", "key:a"), 10);
  });

  it("takes the tenant's limit when that is the later one", () => {
    const { l } = limiter({ ratePerSecond: 10, burst: 10 }, { ratePerSecond: 100, burst: 100 });
    l.admit(as("t", "key:a"), 10);
    const err = thrown(() => l.admit(as("t", "key:a"), 10));
    expect(err.scope).toBe("tenant");
    expect(err.retryAfterMs).toBe(1000);
  });

  it("says which burst a batch can never fit", () => {
    const { l } = limiter({ ratePerSecond: 1000, burst: 1000 }, { ratePerSecond: 100, burst: 200 });
    const err = thrown(() => l.admit(as("t"), 500));
    expect(err.scope).toBe("key");
    expect(err.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
    expect(err.message).toMatch(/this API key's largest ingest burst \(200 events per server\)/);
  });
});

describe("RateLimiter.exhausted (a call of unknown size, before its body is read)", () => {
  it("refuses nothing without a limit or while tokens are left", () => {
    expect(limiter(NONE, NONE).l.exhausted(as("t"))).toBeNull();
    const { l } = tenantLimiter(100, 100);
    expect(l.exhausted(as("t"))).toBeNull();
    l.admit(as("t"), 99);
    expect(l.exhausted(as("t"))).toBeNull();
  });

  it("refuses an empty bucket with the handler's message and the delay for one event, spending nothing", () => {
    const { l, clock } = tenantLimiter(100, 100);
    l.admit(as("t"), 100);
    const err = l.exhausted(as("t"))!;
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.scope).toBe("tenant");
    expect(err.retryAfterMs).toBe(10);
    expect(err.message).toBe("this tenant is over its ingest rate (100 events/s per server, bursts of up to 100); retry after 0.1 s");
    expect(l.exhausted(as("other"))).toBeNull();
    clock.t = 10;
    expect(l.exhausted(as("t"))).toBeNull();
    l.admit(as("t"), 1);
  });

  it("after a refused call, refuses until as many events as it asked for have refilled", () => {
    const { l, clock } = tenantLimiter(1000, 1000);
    l.admit(as("t"), 1000);
    clock.t = 50; // 50 back
    thrown(() => l.admit(as("t"), 100));
    expect(l.exhausted(as("t"))!.retryAfterMs).toBe(50);
    clock.t = 99;
    expect(l.exhausted(as("t"))).not.toBeNull();
    clock.t = 100;
    expect(l.exhausted(as("t"))).toBeNull();
    l.admit(as("t"), 100);
  });

  it("answers for the key's bucket and the tenant's, the later of the two", () => {
    const { l } = limiter({ ratePerSecond: 100, burst: 100 }, { ratePerSecond: 10, burst: 50 });
    l.admit(as("t", "key:a"), 50);
    thrown(() => l.admit(as("t", "key:a"), 20)); // the key is short; the tenant has 50
    const err = l.exhausted(as("t", "key:a"))!;
    expect(err.scope).toBe("key");
    expect(err.retryAfterMs).toBe(2000);
    expect(l.exhausted(as("t", "key:b"))).toBeNull();
  });
});
