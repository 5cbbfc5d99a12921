import { describe, expect, it } from "vitest";
import { uuidv7 } from "../../src/domain/uuidv7.ts";

const SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function bytesOf(id: string): Buffer {
  return Buffer.from(id.replaceAll("-", ""), "hex");
}

describe("uuidv7", () => {
  it("has the canonical 8-4-4-4-12 lowercase hex shape", () => {
    for (let i = 0; i < 200; i++) expect(uuidv7()).toMatch(SHAPE);
  });

  it("sets version 7 and the RFC 9562 variant on every id", () => {
    for (let i = 0; i < 1000; i++) {
      const b = bytesOf(uuidv7());
      expect(b.length).toBe(16);
      expect(b[6]! >> 4).toBe(0x7);
      expect(b[8]! >> 6).toBe(0b10);
    }
  });

  it("keeps the random bits next to the version and variant random", () => {
    // Low nibble of byte 6 and low 6 bits of byte 8 come from randomness:
    // over many ids they must take more than one value.
    const low6 = new Set<number>();
    const low8 = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const b = bytesOf(uuidv7(0));
      low6.add(b[6]! & 0x0f);
      low8.add(b[8]! & 0x3f);
    }
    expect(low6.size).toBeGreaterThan(4);
    expect(low8.size).toBeGreaterThan(8);
  });

  it("puts the millisecond time, big-endian, in the first 48 bits", () => {
    const now = 0x0123_4567_89ab;
    const id = uuidv7(now);
    expect(id.slice(0, 13)).toBe("01234567-89ab");
    expect(bytesOf(id).readUIntBE(0, 6)).toBe(now);
    expect(uuidv7(0).slice(0, 13)).toBe("00000000-0000");
    expect(uuidv7(2 ** 48 - 1).slice(0, 13)).toBe("ffffffff-ffff");
  });

  it("uses Date.now() by default", () => {
    const before = Date.now();
    const id = uuidv7();
    const after = Date.now();
    const t = bytesOf(id).readUIntBE(0, 6);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(after);
  });

  it("sorts by time: an id from a later millisecond sorts after an earlier one", () => {
    const times = [0, 1, 255, 256, 65_535, 65_536, 2 ** 40, 1_700_000_000_000, 1_700_000_000_001, 2 ** 41, 2 ** 48 - 1];
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    const ids = times.map((t) => uuidv7(t));
    expect([...ids].sort()).toEqual(ids);
    // Also in reverse generation order, sorting restores time order.
    const shuffled = [...ids].reverse();
    expect(shuffled.sort()).toEqual(ids);
  });

  it("gives 10,000 distinct ids, even within the same millisecond", () => {
    const sameMs = new Set<string>();
    for (let i = 0; i < 10_000; i++) sameMs.add(uuidv7(1_700_000_000_000));
    expect(sameMs.size).toBe(10_000);
    const live = new Set<string>();
    for (let i = 0; i < 10_000; i++) live.add(uuidv7());
    expect(live.size).toBe(10_000);
  });
});
