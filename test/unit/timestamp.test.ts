import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { fromJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { getOption } from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import {
  formatMicros,
  formatMicrosExact,
  MAX_MICROS,
  MAX_TIMESTAMP_SECONDS,
  microsFromDate,
  microsFromTimestamp,
  MIN_MICROS,
  MIN_TIMESTAMP_SECONDS,
  OCCURRED_AT_MAX_MICROS,
  OCCURRED_AT_MIN_MICROS,
  parseMicros,
  timestampFromMicros,
  timestampFromRfc3339,
  timestampProblem,
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

  it("equals the BigInt arithmetic everywhere: random times of every range, midnights and their neighbours", () => {
    let x = 12345;
    const random = () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x / 2 ** 31;
    };
    const day = 86_400_000_000n;
    const times: bigint[] = [0n, -1n, 1n, MIN_MICROS, MAX_MICROS, BigInt(Number.MAX_SAFE_INTEGER), -BigInt(Number.MAX_SAFE_INTEGER)];
    for (const edge of [BigInt(Number.MAX_SAFE_INTEGER), -BigInt(Number.MAX_SAFE_INTEGER)]) times.push(edge + 1n, edge - 1n);
    for (let i = 0; i < 20_000; i++) {
      // Midnights of random days, and random times, over the whole range and near now.
      const d = BigInt(Math.floor((random() - 0.5) * 2 * 104_000)) * day;
      times.push(d - 1n, d, d + 1n, BigInt(Math.floor((random() - 0.5) * 2 * Number.MAX_SAFE_INTEGER)));
      times.push(MIN_MICROS + BigInt(Math.floor(random() * 1e15)) * 250_000n, 1_764_000_000_000_000n + BigInt(Math.floor(random() * 1e11)));
    }
    for (const t of times) {
      if (t < MIN_MICROS || t > MAX_MICROS) continue;
      expect(formatMicros(t), String(t)).toBe(formatMicrosExact(t));
      expect(parseMicros(formatMicros(t))).toBe(t);
    }
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
      0n,
      1n,
      -1n,
      999_999n,
      -999_999n,
      1_000_000n,
      -1_000_000n,
      -1_500_000n,
      1_714_979_289_123_456n,
      -14_182_940_000_000n,
      -2_208_988_800_000_001n,
      MIN_MICROS,
      MAX_MICROS,
    ];
    for (const us of samples) {
      expect(parseMicros(formatMicros(us))).toBe(us);
    }
  });

  it("round-trips a spread of times across the whole range", () => {
    const span = MAX_MICROS - MIN_MICROS;
    for (let i = 0n; i <= 200n; i++) {
      const us = MIN_MICROS + (span * i) / 200n + ((i * 7_919n) % 1_000_000n);
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

describe("timestampProblem", () => {
  it.each([
    [0n, 0],
    [1_700_000_000n, 999_999_999],
    [MIN_TIMESTAMP_SECONDS, 0],
    [MAX_TIMESTAMP_SECONDS, 999_999_999],
  ])("accepts {seconds: %s, nanos: %s}", (seconds, nanos) => {
    expect(timestampProblem({ seconds, nanos })).toBeNull();
  });

  it.each([
    [9_223_372_035n, 1_999_999_999], // would read as 2262-04-11T23:47:16.999999Z
    [1n, -1],
    [1n, 1_000_000_000],
    [1n, 2_000_000_000],
    [1n, 0.5],
    [MIN_TIMESTAMP_SECONDS - 1n, 0],
    [MAX_TIMESTAMP_SECONDS + 1n, 0],
    [-(2n ** 63n), 0],
    [2n ** 63n - 1n, 0],
  ])("refuses {seconds: %s, nanos: %s}", (seconds, nanos) => {
    expect(timestampProblem({ seconds, nanos })).toMatch(/nanos|0001|9999/);
  });

  it("the Timestamp range is the years 1 to 9999", () => {
    expect(MIN_TIMESTAMP_SECONDS * 1_000_000n).toBe(MIN_MICROS);
    expect(MAX_TIMESTAMP_SECONDS * 1_000_000n + 999_999n).toBe(MAX_MICROS);
  });
});

describe("the occurred_at window", () => {
  it("is the contract's rule on Event.occurred_at, and whole microseconds", () => {
    const rules = getOption(EventSchema.field.occurredAt!, fieldRules);
    expect(rules.type.case).toBe("timestamp");
    const t = rules.type.value as {
      greaterThan: { case: string; value: { seconds: bigint; nanos: number } };
      lessThan: { case: string; value: { seconds: bigint; nanos: number } };
    };
    expect(t.greaterThan.case).toBe("gte");
    expect(t.lessThan.case).toBe("lte");
    const micros = (v: { seconds: bigint; nanos: number }) => v.seconds * 1_000_000n + BigInt(v.nanos / 1000);
    expect(t.greaterThan.value.nanos % 1000).toBe(0);
    expect(t.lessThan.value.nanos % 1000).toBe(0);
    expect(micros(t.greaterThan.value)).toBe(OCCURRED_AT_MIN_MICROS);
    expect(micros(t.lessThan.value)).toBe(OCCURRED_AT_MAX_MICROS);
  });

  it("fits Elasticsearch's date_nanos (1970-01-01 to 2262-04-11T23:47:16.854775807Z)", () => {
    expect(OCCURRED_AT_MIN_MICROS).toBe(0n);
    expect(OCCURRED_AT_MAX_MICROS * 1000n).toBeLessThanOrEqual(2n ** 63n - 1n);
    expect(formatMicros(OCCURRED_AT_MAX_MICROS)).toBe("2262-04-11T23:47:16.854775Z");
  });
});

describe("timestampFromRfc3339", () => {
  it.each([
    ["2026-01-31T23:00:00Z", 1_769_900_400n, 0],
    ["2024-02-29T12:00:00.5Z", 1_709_208_000n, 500_000_000],
    ["2000-02-29T00:00:00Z", 951_782_400n, 0],
    ["1970-01-01T00:00:00.000000001Z", 0n, 1],
    ["1970-01-01T01:00:00+01:00", 0n, 0],
    ["1969-12-31T23:00:00-01:00", 0n, 0],
    ["0001-01-01T00:00:00Z", MIN_TIMESTAMP_SECONDS, 0],
    ["0050-06-01T00:00:00Z", BigInt(Date.parse("0050-06-01T00:00:00Z") / 1000), 0], // not moved to 1950
    ["9999-12-31T23:59:59.999999999Z", MAX_TIMESTAMP_SECONDS, 999_999_999],
  ])("reads %s", (text, seconds, nanos) => {
    expect(timestampFromRfc3339(text)).toEqual({ seconds, nanos });
  });

  it("agrees with protobuf-es on valid times", () => {
    for (const text of [
      "2026-03-02T00:00:00Z",
      "2024-02-29T23:59:59.123456789Z",
      "2026-06-30T12:00:00+05:30",
      "1999-12-31T23:59:59-08:00",
    ]) {
      const ours = timestampFromRfc3339(text)!;
      const theirs = fromJson(TimestampSchema, text);
      expect([ours.seconds, ours.nanos]).toEqual([theirs.seconds, theirs.nanos]);
    }
  });

  it.each([
    "2026-02-30T00:00:00Z", // protobuf-es: 2026-03-02
    "2026-02-29T00:00:00Z", // not a leap year
    "1900-02-29T00:00:00Z", // not a leap year either
    "2026-04-31T00:00:00Z",
    "2026-06-31T00:00:00Z",
    "2026-09-31T00:00:00Z",
    "2026-11-31T00:00:00Z",
    "2026-01-32T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-13-10T00:00:00Z",
    "2026-01-00T00:00:00Z",
    "2026-01-01T24:00:00Z", // protobuf-es: the next day
    "2026-01-01T23:60:00Z",
    "2026-01-01T23:59:60Z",
    "2026-01-01T12:00:00+24:00",
    "2026-01-01T12:00:00+01:60",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:30:00+01:00", // before year 1
    "9999-12-31T23:30:00-01:00", // after year 9999
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00.Z",
    "2026-01-01T00:00:00.1234567890Z",
    "2026-01-01 00:00:00Z",
    "2026-01-01t00:00:00z",
    "",
  ])("refuses %j", (text) => {
    expect(timestampFromRfc3339(text)).toBeNull();
  });
});
