import { describe, expect, it } from "vitest";
import type { Condition, EventQuery } from "../../src/domain/event-query.ts";
import { parseMicros } from "../../src/domain/timestamp.ts";
import {
  conditionQuery,
  DATE_NANOS_MAX_MICROS,
  esQuery,
  esSearchAfter,
  esSort,
  positionFromSortValues,
} from "../../src/search/elasticsearch/query.ts";

const one = (c: Condition) => conditionQuery(c);

describe("esQuery", () => {
  it("filters by tenant first, then one filter clause per condition, in order", () => {
    const q: EventQuery = {
      conditions: [{ kind: "terms", field: "actor.id", values: ["u1"] }, { kind: "none" }],
    };
    expect(esQuery("tenant-a", q)).toEqual({
      bool: { filter: [{ term: { tenant_id: "tenant-a" } }, { terms: { "actor.id": ["u1"] } }, { match_none: {} }] },
    });
    expect(esQuery("t", { conditions: [] })).toEqual({ bool: { filter: [{ term: { tenant_id: "t" } }] } });
  });

  it("terms use the dotted field names", () => {
    expect(one({ kind: "terms", field: "context.request_id", values: ["a", "b"] })).toEqual({
      terms: { "context.request_id": ["a", "b"] },
    });
    expect(one({ kind: "terms", field: "severity", values: ["ERROR"] })).toEqual({ terms: { severity: ["ERROR"] } });
    expect(one({ kind: "terms", field: "id", values: ["e1"] })).toEqual({ terms: { id: ["e1"] } });
  });

  it("action: exact terms or prefixes, at least one", () => {
    expect(one({ kind: "action", exact: ["a.b", "c.d"], prefixes: ["x.", "y."] })).toEqual({
      bool: {
        should: [{ terms: { action: ["a.b", "c.d"] } }, { prefix: { action: { value: "x." } } }, { prefix: { action: { value: "y." } } }],
        minimum_should_match: 1,
      },
    });
    expect(one({ kind: "action", exact: [], prefixes: ["x."] })).toEqual({
      bool: { should: [{ prefix: { action: { value: "x." } } }], minimum_should_match: 1 },
    });
    expect(one({ kind: "action", exact: [], prefixes: [] })).toEqual({ match_none: {} });
  });

  it("time: a range with gte/lt as RFC 3339 text with microseconds", () => {
    const from = parseMicros("2026-01-01T00:00:00.000001Z");
    const to = parseMicros("2026-02-01T12:30:00.5Z");
    expect(one({ kind: "time", from, to })).toEqual({
      range: { occurred_at: { gte: "2026-01-01T00:00:00.000001Z", lt: "2026-02-01T12:30:00.500000Z" } },
    });
    expect(one({ kind: "time", from, to: null })).toEqual({ range: { occurred_at: { gte: "2026-01-01T00:00:00.000001Z" } } });
    expect(one({ kind: "time", from: null, to })).toEqual({ range: { occurred_at: { lt: "2026-02-01T12:30:00.500000Z" } } });
    expect(one({ kind: "time", from: null, to: null })).toEqual({ match_all: {} });
  });

  it("time: bounds outside the date_nanos range (1970..2262) drop out or match nothing", () => {
    const before = parseMicros("1960-01-01T00:00:00Z");
    const after = parseMicros("2300-01-01T00:00:00Z");
    const t = parseMicros("2026-01-01T00:00:00Z");
    expect(one({ kind: "time", from: before, to: t })).toEqual({ range: { occurred_at: { lt: "2026-01-01T00:00:00.000000Z" } } });
    expect(one({ kind: "time", from: t, to: after })).toEqual({ range: { occurred_at: { gte: "2026-01-01T00:00:00.000000Z" } } });
    expect(one({ kind: "time", from: before, to: after })).toEqual({ match_all: {} });
    expect(one({ kind: "time", from: 0n, to: null })).toEqual({ match_all: {} });
    expect(one({ kind: "time", from: null, to: before })).toEqual({ match_none: {} });
    expect(one({ kind: "time", from: null, to: 0n })).toEqual({ match_none: {} });
    expect(one({ kind: "time", from: after, to: null })).toEqual({ match_none: {} });
    expect(one({ kind: "time", from: DATE_NANOS_MAX_MICROS, to: null })).toEqual({
      range: { occurred_at: { gte: "2262-04-11T23:47:16.854775Z" } },
    });
    expect(one({ kind: "time", from: null, to: 1n })).toEqual({ range: { occurred_at: { lt: "1970-01-01T00:00:00.000001Z" } } });
  });

  it("metadata: term/terms on the flattened key, or exists", () => {
    expect(one({ kind: "metadata", path: ["card", "brand"], values: ["visa"] })).toEqual({ term: { "metadata.card.brand": "visa" } });
    expect(one({ kind: "metadata", path: ["plan"], values: ["pro", "free"] })).toEqual({ terms: { "metadata.plan": ["pro", "free"] } });
    expect(one({ kind: "metadata", path: ["plan"], values: [] })).toEqual({ exists: { field: "metadata.plan" } });
  });

  it("text: a phrase in message or open_text; negated with must_not", () => {
    const phrase = {
      bool: {
        should: [{ match_phrase: { message: "card declined" } }, { match_phrase: { open_text: "card declined" } }],
        minimum_should_match: 1,
      },
    };
    expect(one({ kind: "text", words: ["card", "declined"], negate: false })).toEqual(phrase);
    expect(one({ kind: "text", words: ["card", "declined"], negate: true })).toEqual({ bool: { must_not: [phrase] } });
    expect(one({ kind: "text", words: [], negate: false })).toEqual({ match_none: {} });
    expect(one({ kind: "text", words: [], negate: true })).toEqual({ match_all: {} });
  });

  it("none matches nothing", () => {
    expect(one({ kind: "none" })).toEqual({ match_none: {} });
  });
});

describe("sort and search_after", () => {
  it("sorts by occurred_at (formatted, to keep nanosecond precision) then sequence", () => {
    expect(esSort("asc")).toEqual([
      { occurred_at: { order: "asc", format: "strict_date_optional_time_nanos" } },
      { sequence: { order: "asc" } },
    ]);
    expect(esSort("desc")).toEqual([
      { occurred_at: { order: "desc", format: "strict_date_optional_time_nanos" } },
      { sequence: { order: "desc" } },
    ]);
  });

  it("search_after is the formatted time and the sequence", () => {
    const p = { occurredAt: parseMicros("2026-03-04T05:06:07.123456Z"), sequence: 42n };
    expect(esSearchAfter(p, "asc")).toEqual(["2026-03-04T05:06:07.123456Z", 42]);
    expect(esSearchAfter({ ...p, sequence: 2n ** 60n }, "desc")).toEqual(["2026-03-04T05:06:07.123456Z", "1152921504606846976"]);
  });

  it("positions outside the date_nanos range mean start or end", () => {
    const early = { occurredAt: parseMicros("1969-12-31T23:59:59.999999Z"), sequence: 1n };
    const late = { occurredAt: DATE_NANOS_MAX_MICROS + 1n, sequence: 1n };
    expect(esSearchAfter(early, "asc")).toBe("start");
    expect(esSearchAfter(early, "desc")).toBe("end");
    expect(esSearchAfter(late, "asc")).toBe("end");
    expect(esSearchAfter(late, "desc")).toBe("start");
    expect(esSearchAfter({ occurredAt: 0n, sequence: 1n }, "desc")).toEqual(["1970-01-01T00:00:00.000000Z", 1]);
  });

  it("sort values round-trip exactly at microseconds, whatever the digits ES prints", () => {
    const t = parseMicros("2026-03-04T05:06:07.123456Z");
    expect(positionFromSortValues(["2026-03-04T05:06:07.123456Z", 9])).toEqual({ occurredAt: t, sequence: 9n });
    expect(positionFromSortValues(["2026-03-04T05:06:07.123456000Z", "9"])).toEqual({ occurredAt: t, sequence: 9n });
    expect(positionFromSortValues(["2026-03-04T05:06:07Z", 1])).toEqual({ occurredAt: parseMicros("2026-03-04T05:06:07Z"), sequence: 1n });
    // epoch nanoseconds as text (exact) also work; as a JSON number they would not be exact.
    expect(positionFromSortValues(["1772600767123456000", 9])).toEqual({ occurredAt: t, sequence: 9n });
    expect(() => positionFromSortValues([1772600767123456000, 9])).toThrow(/not text/);
    expect(() => positionFromSortValues(["2026-03-04T05:06:07Z"])).toThrow(/unexpected sort values/);
    expect(() => positionFromSortValues(["2026-03-04T05:06:07Z", 1.5])).toThrow(/sequence/);
    for (const us of [0n, 1n, 999_999n, t, DATE_NANOS_MAX_MICROS]) {
      const sa = esSearchAfter({ occurredAt: us, sequence: 3n }, "asc");
      expect(positionFromSortValues(sa as (string | number)[])).toEqual({ occurredAt: us, sequence: 3n });
    }
  });
});
