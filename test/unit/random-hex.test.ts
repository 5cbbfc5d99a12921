import { describe, expect, it } from "vitest";
import { randomBytesFromPool, randomHex } from "../../src/domain/random-hex.ts";

describe("randomHex", () => {
  it("gives 2n lowercase hex digits", () => {
    expect(randomHex(16)).toMatch(/^[0-9a-f]{32}$/);
    expect(randomHex(1)).toMatch(/^[0-9a-f]{2}$/);
  });

  it("never gives the same bytes twice, across many refills of the pool", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5_000; i++) seen.add(randomHex(16));
    expect(seen.size).toBe(5_000);
  });

  it("refuses more than the pool holds", () => {
    expect(() => randomBytesFromPool(4097)).toThrow(RangeError);
  });
});
