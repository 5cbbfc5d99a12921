// Event times are kept as microseconds since the epoch (bigint) and written
// as RFC 3339 text with exactly six fraction digits: the precision of
// PostgreSQL's timestamptz, so a time survives the round trip unchanged and
// hashes computed before and after storage agree.
import type { Timestamp } from "@bufbuild/protobuf/wkt";

export type Micros = bigint;

export function microsFromTimestamp(ts: Pick<Timestamp, "seconds" | "nanos">): Micros {
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

const MICROS_PER_DAY = 86_400_000_000;
// Within ±2^53 µs of the epoch (the years 1684 to 2255) a time is exact as
// a Number, and formatMicros does plain arithmetic: it runs two or three
// times per ingested event, and the BigInt division and the Date of each
// call were 5 % of the service's CPU (docs/PERFORMANCE.md, "Round five").
const SAFE_MICROS = BigInt(Number.MAX_SAFE_INTEGER);

// The date part of the last day formatted: most times of a batch share it.
let lastDay = Number.NaN;
let lastDayText = "";

const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);

export function formatMicros(us: Micros): string {
  if (us < MIN_MICROS || us > MAX_MICROS) throw new RangeError(`time ${us} µs is outside the years 1 to 9999`);
  if (us > SAFE_MICROS || us < -SAFE_MICROS) return formatMicrosExact(us);
  const n = Number(us);
  // Exact: a quotient that is not a whole number is at least 1/MICROS_PER_DAY
  // (1.2e-11) away from one, more than half the spacing of doubles below
  // 2^17 days (7.3e-12), so rounding never carries it across midnight.
  const day = Math.floor(n / MICROS_PER_DAY);
  const rest = n - day * MICROS_PER_DAY;
  if (day !== lastDay) {
    lastDayText = new Date(day * 86_400_000).toISOString().slice(0, 10);
    lastDay = day;
  }
  const micros = rest % 1_000_000;
  let seconds = (rest - micros) / 1_000_000;
  const ss = seconds % 60;
  seconds = (seconds - ss) / 60;
  const mm = seconds % 60;
  const hh = (seconds - mm) / 60;
  return `${lastDayText}T${pad2(hh)}:${pad2(mm)}:${pad2(ss)}.${String(micros).padStart(6, "0")}Z`;
}

/** formatMicros for any time in range, with BigInt arithmetic. */
export function formatMicrosExact(us: Micros): string {
  const { seconds, nanos } = timestampFromMicros(us);
  const iso = new Date(Number(seconds) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 19)}.${String(nanos / 1000).padStart(6, "0")}Z`;
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

// google.protobuf.Timestamp's own range (0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z). A binary message can carry any int64
// seconds and int32 nanos; protobuf-es decodes them unchecked, and
// microsFromTimestamp would turn nanos of -1 or 2e9 into another instant.
export const MIN_TIMESTAMP_SECONDS = -62135596800n;
export const MAX_TIMESTAMP_SECONDS = 253402300799n;

/** Why a Timestamp is not a valid one (null if it is): nanos 0..999,999,999, seconds within the years 1 to 9999. */
export function timestampProblem(ts: { seconds: bigint; nanos: number }): string | null {
  if (!Number.isInteger(ts.nanos) || ts.nanos < 0 || ts.nanos > 999_999_999) {
    return `nanos must be 0 to 999999999, not ${ts.nanos}`;
  }
  if (ts.seconds < MIN_TIMESTAMP_SECONDS || ts.seconds > MAX_TIMESTAMP_SECONDS) {
    return "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z";
  }
  return null;
}

// The documented window of an event's occurred_at (the contract's
// protovalidate rule on Event.occurred_at, checked against it by
// test/unit/timestamp.test.ts): Elasticsearch's date_nanos range, truncated
// to whole microseconds, so that every stored event can be indexed.
export const OCCURRED_AT_MIN_MICROS: Micros = 0n;
export const OCCURRED_AT_MAX_MICROS: Micros = 9_223_372_036_854_775n;

const RFC3339_JSON = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/**
 * The proto3 JSON form of a Timestamp, strictly: every field of the date and
 * time of day must exist on the calendar (protobuf-es leaves this to
 * Date.parse, which moves 2026-02-30 to 2026-03-02 and 24:00 to the next
 * day), and the instant must be within the years 1 to 9999. Null otherwise.
 */
export function timestampFromRfc3339(text: string): { seconds: bigint; nanos: number } | null {
  const m = RFC3339_JSON.exec(text);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 59) return null;
  let offset = 0;
  if (m[8] !== undefined) {
    const [oh, om] = [Number(m[9]), Number(m[10])];
    if (oh > 23 || om > 59) return null;
    offset = (m[8] === "+" ? 1 : -1) * (oh * 3600 + om * 60);
  }
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  const seconds = BigInt(date.getTime() / 1000 + h * 3600 + mi * 60 + s - offset);
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) return null;
  return { seconds, nanos: Number((m[7] ?? "").padEnd(9, "0")) };
}

export const RFC3339_HINT = "must be an RFC 3339 time that exists on the calendar, from year 1 to 9999 (e.g. 2026-01-31T23:00:00Z)";
