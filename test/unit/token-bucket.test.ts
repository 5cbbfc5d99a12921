// KeyedTokenBuckets with an injected clock: refill, burst, batches larger
// than the burst, independence of keys, and idle buckets dropped.
import { describe, expect, it } from "vitest";
import { KeyedTokenBuckets } from "../../src/domain/token-bucket.ts";

function buckets(ratePerSecond: number, burst: number) {
  const clock = { t: 0 };
  const b = new KeyedTokenBuckets({ ratePerSecond, burst, now: () => clock.t });
  return { b, clock };
}

describe("KeyedTokenBuckets", () => {
  it("lets a new key spend its whole burst at once, then says when enough has refilled", () => {
    const { b } = buckets(100, 1000);
    expect(b.take("t", 1000)).toEqual({ ok: true });
    expect(b.take("t", 40)).toEqual({ ok: false, retryAfterMs: 400 });
    expect(b.available("t")).toBe(0);
  });

  it("refills at the rate, up to the burst and no further", () => {
    const { b, clock } = buckets(100, 500);
    expect(b.take("t", 500).ok).toBe(true);
    clock.t = 1_000;
    expect(b.available("t")).toBe(100);
    expect(b.take("t", 101).ok).toBe(false);
    expect(b.take("t", 100).ok).toBe(true);
    clock.t = 60_000;
    expect(b.available("t")).toBe(500);
  });

  it("spends nothing when it refuses", () => {
    const { b, clock } = buckets(10, 100);
    b.take("t", 95);
    expect(b.take("t", 10).ok).toBe(false);
    clock.t = 500; // +5
    expect(b.take("t", 10)).toEqual({ ok: true });
  });

  it("refuses a batch larger than the burst forever", () => {
    const { b, clock } = buckets(1000, 500);
    expect(b.take("t", 501)).toEqual({ ok: false, retryAfterMs: Number.POSITIVE_INFINITY });
    clock.t = 3_600_000;
    expect(b.take("t", 501).ok).toBe(false);
    expect(b.take("t", 500).ok).toBe(true);
  });

  it("tells when a call of unknown size fits: one token, or as many as the last refused take asked, until a take succeeds", () => {
    const { b, clock } = buckets(100, 1000);
    expect(b.nextShortfallMs("fresh")).toBe(0);
    b.take("t", 1000);
    expect(b.nextShortfallMs("t")).toBe(10); // one token
    expect(b.take("t", 300).ok).toBe(false);
    expect(b.nextShortfallMs("t")).toBe(3000); // 300 tokens
    clock.t = 1_000; // 100 back
    expect(b.nextShortfallMs("t")).toBe(2000);
    expect(b.take("t", 50).ok).toBe(true); // a smaller call fitted: forgotten
    expect(b.nextShortfallMs("t")).toBe(0);
    b.noteRefused("t", 80); // 50 left
    expect(b.nextShortfallMs("t")).toBe(300);
    clock.t = 1_300;
    expect(b.nextShortfallMs("t")).toBe(0);
  });

  it("does not remember a refused call larger than the burst, nor one of an unknown key", () => {
    const { b } = buckets(100, 500);
    b.take("t", 500);
    b.take("t", 501);
    b.noteRefused("t", 600);
    expect(b.nextShortfallMs("t")).toBe(10);
    b.noteRefused("other", 10);
    expect(b.nextShortfallMs("other")).toBe(0);
  });

  it("keeps keys apart", () => {
    const { b } = buckets(10, 100);
    expect(b.take("noisy", 100).ok).toBe(true);
    expect(b.take("noisy", 1).ok).toBe(false);
    expect(b.take("quiet", 100).ok).toBe(true);
  });

  it("drops buckets that have refilled, so memory follows the keys active lately", () => {
    const { b, clock } = buckets(100, 100); // full again 1 s after the last take
    for (let i = 0; i < 1000; i++) b.take(`k${i}`, 50);
    expect(b.size).toBe(1000);
    clock.t = 600;
    b.take("late", 100); // not yet full: nothing dropped (and no sweep before 1 s)
    expect(b.size).toBe(1001);
    clock.t = 1_100;
    b.take("late", 1); // the others are full by now; "late" is not
    expect(b.size).toBe(1);
    expect(b.available("k1")).toBe(100);
  });

  it("refuses a rate or burst that makes no sense", () => {
    expect(() => new KeyedTokenBuckets({ ratePerSecond: 0, burst: 10 })).toThrow(RangeError);
    expect(() => new KeyedTokenBuckets({ ratePerSecond: 10, burst: 0 })).toThrow(RangeError);
  });
});
