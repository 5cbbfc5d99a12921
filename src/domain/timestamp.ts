// Event times are kept as microseconds since the epoch (bigint) and written
// as RFC 3339 text with exactly six fraction digits: the precision of
// PostgreSQL's timestamptz, so a time survives the round trip unchanged and
// hashes computed before and after storage agree.
import type { Timestamp } from "@bufbuild/protobuf/wkt";

export type Micros = bigint;

export function microsFromTimestamp(ts: Timestamp): Micros {
  return ts.seconds * 1_000_000n + BigInt(Math.floor(ts.nanos / 1000));
}

export function timestampFromMicros(us: Micros): { seconds: bigint; nanos: number } {
  let seconds = us / 1_000_000n;
  let rest = us % 1_000_000n;
  if (rest < 0n) {
    rest += 1_000_000n;
    seconds -= 1n;
  }
  return { seconds, nanos: Number(rest) * 1000 };
}

export function microsFromDate(d: Date): Micros {
  return BigInt(d.getTime()) * 1000n;
}

// The last time formatted: a batch's rows all share one received_at.
let lastMicros: Micros | null = null;
let lastText = "";

export function formatMicros(us: Micros): string {
  if (us === lastMicros) return lastText;
  if (us < MIN_MICROS || us > MAX_MICROS) throw new RangeError(`time ${us} µs is outside the years 1 to 9999`);
  const { seconds, nanos } = timestampFromMicros(us);
  const iso = new Date(Number(seconds) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  lastText = `${iso.slice(0, 19)}.${String(nanos / 1000).padStart(6, "0")}Z`;
  lastMicros = us;
  return lastText;
}

const rfc3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$/;

/** Parses the text formatMicros writes (and PostgreSQL's to_char output in the same shape). */
export function parseMicros(text: string): Micros {
  const m = rfc3339.exec(text);
  if (!m) throw new Error(`not an RFC 3339 UTC time: ${text}`);
  const ms = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 19) !== m[1]) throw new Error(`not a valid time: ${text}`);
  const fraction = (m[2] ?? "").padEnd(6, "0").slice(0, 6);
  return BigInt(ms) * 1000n + BigInt(fraction);
}

// PostgreSQL's timestamptz covers 4713 BC to 294276 AD; we accept the years
// 1 to 9999 that RFC 3339 and protobuf's Timestamp can express.
export const MIN_MICROS: Micros = -62135596800n * 1_000_000n;
export const MAX_MICROS: Micros = 253402300799n * 1_000_000n + 999_999n;
