import { describe, expect, it } from "vitest";
import { MIN_PAGE_BUFFER, PageBuffers } from "../../src/search/postgres/page-buffers.ts";

describe("PageBuffers", () => {
  it("gives a new buffer, a quarter larger than asked and never under MIN_PAGE_BUFFER, when none is free", () => {
    const pool = new PageBuffers(2);
    expect(pool.take(10).length).toBe(Math.ceil(MIN_PAGE_BUFFER * 1.25));
    expect(pool.take(1_000_000).length).toBe(1_250_000);
  });

  it("takes back the whole buffer under a view, and gives it out again for a page that fits", () => {
    const pool = new PageBuffers(2);
    const a = pool.take(200_000);
    pool.give(a.subarray(10, 20));
    expect(pool.size).toBe(1);
    const again = pool.take(150_000);
    expect(again.buffer).toBe(a.buffer);
    expect(again.length).toBe(a.length);
    expect(pool.size).toBe(0);
    // Too small for what is asked: a new one, the free one stays.
    pool.give(again);
    expect(pool.take(400_000).buffer).not.toBe(a.buffer);
    expect(pool.size).toBe(1);
  });

  it("keeps at most `keep`, the largest ones, each once, and gives out the smallest that fits", () => {
    const pool = new PageBuffers(2);
    const small = pool.take(100_000);
    const mid = pool.take(200_000);
    const large = pool.take(300_000);
    pool.give(small);
    pool.give(small);
    expect(pool.size).toBe(1);
    pool.give(mid);
    pool.give(large);
    expect(pool.size).toBe(2);
    expect(pool.take(150_000).buffer).toBe(mid.buffer);
    expect(pool.take(150_000).buffer).toBe(large.buffer);
    expect(pool.size).toBe(0);
  });

  it("never keeps Node's shared pool, which small buffers are slices of, nor anything as small", () => {
    const pool = new PageBuffers(2);
    const small = Buffer.from("a small buffer");
    expect(small.buffer.byteLength).toBe(Buffer.poolSize);
    pool.give(small);
    pool.give(Buffer.allocUnsafe(Buffer.poolSize));
    pool.give(Buffer.allocUnsafe(MIN_PAGE_BUFFER));
    expect(pool.size).toBe(0);
    pool.give(Buffer.allocUnsafe(Math.max(Buffer.poolSize, MIN_PAGE_BUFFER) + 1));
    expect(pool.size).toBe(1);
  });
});
