import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  formatMicros,
  MAX_MICROS,
  microsFromDate,
  microsFromTimestamp,
  MIN_MICROS,
  parseMicros,
  timestampFromMicros,
} from "../../src/domain/timestamp.ts";

const ts = (seconds: bigint, nanos: number) => create(TimestampSchema, { seconds, nanos });

describe("microsFromTimestamp", () => {
  it("converts whole seconds", () => {
    expect(microsFromTimestamp(ts(0n, 0))).toBe(0n);
    expect(microsFromTimestamp(ts(1_700_000_000n, 0))).toBe(1_700_000_000_000_000n);
  });

  it("truncates nanoseconds to microseconds (never rounds up)", () => {
    expect(microsFromTimestamp(ts(1n, 999))).toBe(1_000_000n);
    expect(microsFromTimestamp(ts(1n, 1_000))).toBe(1_000_001n);
    expect(microsFromTimestamp(ts(1n, 1_999))).toBe(1_000_001n);
    expect(microsFromTimestamp(ts(1n, 123_456_789))).toBe(1_123_456n);
    expect(microsFromTimestamp(ts(1n, 999_999_999))).toBe(1_999_999n);
  });

  it("handles times before 1970 (negative seconds, positive nanos)", () => {
    // -1 s + 0.5 s = -0.5 s
    expect(microsFromTimestamp(ts(-1n, 500_000_000))).toBe(-500_000n);
    expect(microsFromTimestamp(ts(-1n, 999_999_999))).toBe(-1n);
    expect(microsFromTimestamp(ts(-1n, 0))).toBe(-1_000_000n);
  });
});

describe("timestampFromMicros", () => {
  it("splits into seconds and non-negative nanos", () => {
    expect(timestampFromMicros(1_123_456n)).toEqual({ seconds: 1n, nanos: 123_456_000 });
    expect(timestampFromMicros(0n)).toEqual({ seconds: 0n, nanos: 0 });
    expect(timestampFromMicros(-1n)).toEqual({ seconds: -1n, nanos: 999_999_000 });
    expect(timestampFromMicros(-1_000_000n)).toEqual({ seconds: -1n, nanos: 0 });
    expect(timestampFromMicros(-1_500_000n)).toEqual({ seconds: -2n, nanos: 500_000_000 });
  });

  it("is the inverse of microsFromTimestamp", () => {
    for (const us of [0n, 1n, -1n, 999_999n, -999_999n, 1_700_000_000_123_456n, -86_400_000_001n, MIN_MICROS, MAX_MICROS]) {
      const t = timestampFromMicros(us);
      expect(t.nanos).toBeGreaterThanOrEqual(0);
      expect(t.nanos).toBeLessThan(1_000_000_000);
      expect(microsFromTimestamp(ts(t.seconds, t.nanos))).toBe(us);
    }
  });
});

describe("microsFromDate", () => {
  it("uses the Date's milliseconds", () => {
    expect(microsFromDate(new Date("2024-05-06T07:08:09.123Z"))).toBe(1_714_979_289_123_000n);
    expect(microsFromDate(new Date(-1))).toBe(-1_000n);
  });
});

describe("formatMicros", () => {
  it("writes RFC 3339 UTC with exactly six fraction digits", () => {
    expect(formatMicros(0n)).toBe("1970-01-01T00:00:00.000000Z");
    expect(formatMicros(1_714_979_289_123_456n)).toBe("2024-05-06T07:08:09.123456Z");
    expect(formatMicros(1n)).toBe("1970-01-01T00:00:00.000001Z");
    expect(formatMicros(1_714_979_289_000_000n)).toBe("2024-05-06T07:08:09.000000Z");
  });

  it("writes times before 1970 correctly", () => {
    expect(formatMicros(-1n)).toBe("1969-12-31T23:59:59.999999Z");
    expect(formatMicros(-1_000_000n)).toBe("1969-12-31T23:59:59.000000Z");
    expect(formatMicros(-500_000n)).toBe("1969-12-31T23:59:59.500000Z");
    expect(formatMicros(-14_182_940_000_000n)).toBe("1969-07-20T20:17:40.000000Z");
  });

  it("formats the MIN and MAX bounds as years 0001 and 9999", () => {
    expect(formatMicros(MIN_MICROS)).toBe("0001-01-01T00:00:00.000000Z");
    expect(formatMicros(MAX_MICROS)).toBe("9999-12-31T23:59:59.999999Z");
  });

  it("sorts as text in the same order as the times (within the bounds)", () => {
    const times = [MIN_MICROS, -1_000_001n, -1n, 0n, 1n, 999_999n, 1_000_000n, 1_714_979_289_123_456n, MAX_MICROS];
    const texts = times.map(formatMicros);
    expect([...texts].sort()).toEqual(texts);
  });
});

describe("parseMicros", () => {
  it("reads what formatMicros writes, also before 1970 and at the bounds", () => {
    const samples = [
      0n, 1n, -1n, 999_999n, -999_999n, 1_000_000n, -1_000_000n, -1_500_000n,
      1_714_979_289_123_456n, -14_182_940_000_000n, -2_208_988_800_000_001n, MIN_MICROS, MAX_MICROS,
    ];
    for (const us of samples) {
      expect(parseMicros(formatMicros(us))).toBe(us);
    }
  });

  it("round-trips a spread of times across the whole range", () => {
    const span = MAX_MICROS - MIN_MICROS;
    for (let i = 0n; i <= 200n; i++) {
      const us = MIN_MICROS + (span * i) / 200n + (i * 7_919n) % 1_000_000n;
      if (us > MAX_MICROS) continue;
      expect(parseMicros(formatMicros(us))).toBe(us);
    }
  });

  it("accepts fewer than six fraction digits and no fraction", () => {
    expect(parseMicros("2024-05-06T07:08:09Z")).toBe(1_714_979_289_000_000n);
    expect(parseMicros("2024-05-06T07:08:09.1Z")).toBe(1_714_979_289_100_000n);
    expect(parseMicros("2024-05-06T07:08:09.12345Z")).toBe(1_714_979_289_123_450n);
    expect(parseMicros("1969-12-31T23:59:59.5Z")).toBe(-500_000n);
  });

  it("truncates more than six fraction digits", () => {
    expect(parseMicros("2024-05-06T07:08:09.123456789Z")).toBe(1_714_979_289_123_456n);
    expect(parseMicros("1969-12-31T23:59:59.999999999Z")).toBe(-1n);
  });

  it.each([
    "",
    "garbage",
    "2024-05-06",
    "2024-05-06 07:08:09Z", // space instead of T
    "2024-05-06T07:08:09", // no zone
    "2024-05-06T07:08:09+00:00", // offset instead of Z
    "2024-05-06T07:08:09.Z", // empty fraction
    "2024-05-06T07:08:09.1234567890Z", // ten fraction digits
    "2024-5-6T07:08:09Z",
    "+010000-01-01T00:00:00.000000Z",
    "-000001-01-01T00:00:00Z",
    " 2024-05-06T07:08:09Z",
    "2024-05-06T07:08:09Z ",
    "2024-05-06T07:08:09z",
    "2024-13-01T00:00:00Z", // month 13
    "2024-01-01T25:00:00Z", // hour 25
    "2024-01-01T23:60:00Z", // minute 60
    "2024-01-01T23:59:60Z", // leap second
  ])("rejects %j", (text) => {
    expect(() => parseMicros(text)).toThrow(/RFC 3339|valid time/);
  });
});

describe("MIN_MICROS and MAX_MICROS", () => {
  it("are the first and last microsecond of years 1 to 9999", () => {
    expect(MIN_MICROS).toBe(microsFromDate(new Date("0001-01-01T00:00:00.000Z")));
    expect(MAX_MICROS).toBe(microsFromDate(new Date("9999-12-31T23:59:59.999Z")) + 999n);
  });
});
