import { randomBytesFromPool } from "./random-hex.ts";

// RFC 9562 UUID version 7: 48-bit millisecond time, then random bits. Ids
// assigned by the server sort roughly by time, which keeps index inserts local.
export function uuidv7(now: number = Date.now()): string {
  // The pool's bytes are used once, so they are written over in place.
  const b = randomBytesFromPool(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
