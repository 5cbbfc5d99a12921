import { randomFillSync } from "node:crypto";

// Random bytes for the per-event values (event ids, content salts), taken
// from a buffer refilled by one call to the CSPRNG at a time. A call to
// `randomBytes(16)` per value cost 2 µs idle and up to 7 µs on a busy
// machine: two of them per event were 5 % of the service's CPU under
// ingest, and 10-15 ms stretches of one 1,000-event Append. One fill serves
// 256 values; `crypto.randomUUID` keeps a cache the same way.
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

/** `n` (at most 4,096) fresh random bytes: a view of the pool, to be read at once (a later refill writes over it). */
export function randomBytesFromPool(n: number): Buffer {
  if (n > POOL_BYTES) throw new RangeError(`at most ${POOL_BYTES} bytes at a time`);
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const bytes = pool.subarray(offset, offset + n);
  offset += n;
  return bytes;
}

/** `n` fresh random bytes as 2n lowercase hex digits. */
export function randomHex(n: number): string {
  return randomBytesFromPool(n).toString("hex");
}
