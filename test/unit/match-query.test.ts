import type { JsonObject } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { type Condition, TERM_FIELDS, type TermField } from "../../src/domain/event-query.ts";
import { compareForSort, containsPhrase, matchesCondition, matchesQuery, termValue } from "../../src/domain/match-query.ts";
import { parseMicros } from "../../src/domain/timestamp.ts";

function record(over: Partial<StoredRecord> = {}): StoredRecord {
  return {
    tenantId: "t1",
    id: "ev-1",
    occurredAt: parseMicros("2026-01-02T03:04:05.000006Z"),
    receivedAt: parseMicros("2026-01-02T03:04:06Z"),
    sequence: 7n,
    action: "customer.address.changed",
    actor: { id: "u1", type: "USER", name: "Ada Lovelace", ip: "10.0.0.1", userAgent: "curl", sessionId: "s1" },
    target: { type: "customer", id: "cus_1", name: "ACME Ltd" },
    outcome: "DENIED",
    severity: "WARNING",
    context: { requestId: "r1", traceId: "tr1", source: "billing-api", location: "eu-west-1" },
    changes: null,
    metadata: null,
    message: "Card was declined by the bank",
    contentHash: "c",
    hash: "h",
    prevHash: "p",
    ...over,
  };
}

const meta = (metadata: JsonObject, path: string[], values: string[] = []) =>
  matchesCondition(record({ metadata }), { kind: "metadata", path, values });
const text = (r: StoredRecord, phrase: string, negate = false) => matchesCondition(r, { kind: "text", words: phrase.split(" "), negate });

describe("matchesQuery", () => {
  it("is the conjunction of the conditions; no conditions match everything", () => {
    const r = record();
    expect(matchesQuery(r, { conditions: [] })).toBe(true);
    const yes: Condition = { kind: "terms", field: "actor.id", values: ["u1"] };
    const no: Condition = { kind: "terms", field: "actor.id", values: ["u2"] };
    expect(matchesQuery(r, { conditions: [yes, yes] })).toBe(true);
    expect(matchesQuery(r, { conditions: [yes, no] })).toBe(false);
    expect(matchesQuery(r, { conditions: [{ kind: "none" }] })).toBe(false);
  });
});

describe("terms", () => {
  const expected: Record<TermField, string> = {
    id: "ev-1",
    action: "customer.address.changed",
    "actor.id": "u1",
    "actor.type": "USER",
    "actor.name": "Ada Lovelace",
    "actor.ip": "10.0.0.1",
    "actor.session_id": "s1",
    "target.type": "customer",
    "target.id": "cus_1",
    "target.name": "ACME Ltd",
    outcome: "DENIED",
    severity: "WARNING",
    "context.request_id": "r1",
    "context.trace_id": "tr1",
    "context.source": "billing-api",
    "context.location": "eu-west-1",
  };

  it("every term field reads its own value and matches one of the values exactly", () => {
    const r = record();
    for (const field of TERM_FIELDS) {
      expect(termValue(r, field)).toBe(expected[field]);
      expect(matchesCondition(r, { kind: "terms", field, values: ["zzz", expected[field]] })).toBe(true);
      expect(matchesCondition(r, { kind: "terms", field, values: [expected[field].toUpperCase() + "x"] })).toBe(false);
      expect(matchesCondition(r, { kind: "terms", field, values: [] })).toBe(false);
    }
  });

  it("is case-sensitive and exact (no prefix or substring)", () => {
    const r = record();
    expect(matchesCondition(r, { kind: "terms", field: "actor.name", values: ["ada lovelace"] })).toBe(false);
    expect(matchesCondition(r, { kind: "terms", field: "actor.name", values: ["Ada"] })).toBe(false);
  });

  it("target fields of an event without target match nothing, not even the empty string", () => {
    const r = record({ target: null });
    for (const field of ["target.type", "target.id", "target.name"] as const) {
      expect(termValue(r, field)).toBeNull();
      expect(matchesCondition(r, { kind: "terms", field, values: ["", "customer"] })).toBe(false);
    }
  });

  it("empty strings are values like any other", () => {
    const r = record({ actor: { ...record().actor, ip: "" } });
    expect(matchesCondition(r, { kind: "terms", field: "actor.ip", values: [""] })).toBe(true);
  });
});

describe("action", () => {
  const r = record();
  it("matches exact values or prefixes", () => {
    expect(matchesCondition(r, { kind: "action", exact: ["customer.address.changed"], prefixes: [] })).toBe(true);
    expect(matchesCondition(r, { kind: "action", exact: ["customer"], prefixes: [] })).toBe(false);
    expect(matchesCondition(r, { kind: "action", exact: [], prefixes: ["customer."] })).toBe(true);
    expect(matchesCondition(r, { kind: "action", exact: [], prefixes: ["customer.address."] })).toBe(true);
    expect(matchesCondition(r, { kind: "action", exact: ["x"], prefixes: ["invoice.", "customer."] })).toBe(true);
    expect(matchesCondition(r, { kind: "action", exact: ["x"], prefixes: ["invoice."] })).toBe(false);
    expect(matchesCondition(r, { kind: "action", exact: [], prefixes: [] })).toBe(false);
  });
});

describe("time", () => {
  const t = parseMicros("2026-01-02T03:04:05.000006Z");
  const r = record({ occurredAt: t });
  it("is the half-open interval [from, to)", () => {
    expect(matchesCondition(r, { kind: "time", from: t, to: t + 1n })).toBe(true);
    expect(matchesCondition(r, { kind: "time", from: t + 1n, to: null })).toBe(false);
    expect(matchesCondition(r, { kind: "time", from: null, to: t })).toBe(false);
    expect(matchesCondition(r, { kind: "time", from: null, to: null })).toBe(true);
    expect(matchesCondition(r, { kind: "time", from: t - 10n, to: null })).toBe(true);
    expect(matchesCondition(r, { kind: "time", from: t, to: t })).toBe(false);
  });
});

describe("metadata", () => {
  const m: JsonObject = {
    plan: "pro",
    seats: 12,
    ratio: 2.5,
    big: 1e21,
    beta: true,
    off: false,
    none: null,
    empty: "",
    card: { brand: "visa", nested: { deep: "yes" } },
    tags: ["a", 3, true, null, { x: "obj" }, ["inner"]],
    nulls: [null],
    objs: [{ k: "v" }],
    emptyList: [],
    emptyObj: {},
    "dotted.key": "d",
  };

  it("compares scalars by their text: strings, numbers as JS prints them, booleans", () => {
    expect(meta(m, ["plan"], ["pro"])).toBe(true);
    expect(meta(m, ["plan"], ["Pro"])).toBe(false);
    expect(meta(m, ["seats"], ["12"])).toBe(true);
    expect(meta(m, ["seats"], ["12.0"])).toBe(false);
    expect(meta(m, ["ratio"], ["2.5"])).toBe(true);
    expect(meta(m, ["big"], ["1e+21"])).toBe(true);
    expect(meta(m, ["beta"], ["true"])).toBe(true);
    expect(meta(m, ["off"], ["false"])).toBe(true);
    expect(meta(m, ["empty"], [""])).toBe(true);
    expect(meta(m, ["plan"], ["free", "pro"])).toBe(true);
  });

  it("null, objects and missing keys have no text", () => {
    expect(meta(m, ["none"], ["null"])).toBe(false);
    expect(meta(m, ["none"], [""])).toBe(false);
    expect(meta(m, ["card"], ["[object Object]"])).toBe(false);
    expect(meta(m, ["missing"], [""])).toBe(false);
  });

  it("walks nested objects by path", () => {
    expect(meta(m, ["card", "brand"], ["visa"])).toBe(true);
    expect(meta(m, ["card", "nested", "deep"], ["yes"])).toBe(true);
    expect(meta(m, ["card", "nested"], ["yes"])).toBe(false);
    expect(meta(m, ["plan", "x"], ["pro"])).toBe(false);
  });

  it("an array matches through its scalar elements only", () => {
    expect(meta(m, ["tags"], ["a"])).toBe(true);
    expect(meta(m, ["tags"], ["3"])).toBe(true);
    expect(meta(m, ["tags"], ["true"])).toBe(true);
    expect(meta(m, ["tags"], ["inner"])).toBe(false);
    expect(meta(m, ["tags"], ["obj"])).toBe(false);
  });

  it("never descends into arrays", () => {
    expect(meta(m, ["objs", "k"], ["v"])).toBe(false);
    expect(meta(m, ["objs", "0", "k"], ["v"])).toBe(false);
    expect(meta(m, ["tags", "0"], ["a"])).toBe(false);
    expect(meta({ a: [{ "b.c": "x" }] }, ["a", "b", "c"], ["x"])).toBe(false);
  });

  it("a path finds keys that contain dots, as an Elasticsearch flattened field does", () => {
    expect(meta(m, ["dotted", "key"], ["d"])).toBe(true);
    expect(meta(m, ["dotted.key"], ["d"])).toBe(true);
    expect(meta(m, ["dotted"])).toBe(false);
    // Every way of reading a.b.c as keys: nested, literal, and mixed.
    for (const doc of [{ a: { b: { c: "x" } } }, { "a.b.c": "x" }, { "a.b": { c: "x" } }, { a: { "b.c": "x" } }] as JsonObject[]) {
      expect(meta(doc, ["a", "b", "c"], ["x"]), JSON.stringify(doc)).toBe(true);
      expect(meta(doc, ["a", "b", "c"]), JSON.stringify(doc)).toBe(true);
      expect(meta(doc, ["a", "b"]), JSON.stringify(doc)).toBe(false); // an object, or nothing
    }
    // All of them count: a value at any reading matches.
    const both: JsonObject = { card: { brand: "visa" }, "card.brand": ["amex", null] };
    expect(meta(both, ["card", "brand"], ["visa"])).toBe(true);
    expect(meta(both, ["card", "brand"], ["amex"])).toBe(true);
    expect(meta({ "card.brand": null, card: {} }, ["card", "brand"])).toBe(false);
    // Keys match whole: "a.b" is not a prefix reading of "a.bc".
    expect(meta({ "a.b": { c: "x" } }, ["a", "bc"], ["x"])).toBe(false);
    expect(meta({ a: { bc: "x" } }, ["a.b", "c"], ["x"])).toBe(false);
  });

  it("with no values: a non-null scalar, or an array with one", () => {
    for (const k of ["plan", "seats", "beta", "off", "empty", "tags"]) expect(meta(m, [k]), k).toBe(true);
    for (const k of ["none", "card", "nulls", "objs", "emptyList", "emptyObj", "missing"]) expect(meta(m, [k]), k).toBe(false);
    expect(meta(m, ["card", "brand"])).toBe(true);
  });

  it("an event without metadata has no keys; own properties only", () => {
    expect(matchesCondition(record({ metadata: null }), { kind: "metadata", path: ["plan"], values: [] })).toBe(false);
    expect(meta(m, ["constructor"])).toBe(false);
    expect(meta(m, ["toString"])).toBe(false);
  });
});

describe("text", () => {
  const r = record({
    message: "Card was declined by the bank (code 51)",
    metadata: { note: "Retry tomorrow, please", list: ["first value", "second value"], n: 42, deep: { s: "Deep-Text" } },
    changes: { before: { status: "active user" }, after: { status: "closed" } },
  });

  it("finds consecutive words of the message, case-insensitively at word boundaries", () => {
    expect(text(r, "card")).toBe(true);
    expect(text(r, "declined by the")).toBe(true);
    expect(text(r, "code 51")).toBe(true);
    expect(text(r, "bank code")).toBe(true); // punctuation only separates words
    expect(text(r, "card declined")).toBe(false);
    expect(text(r, "decline")).toBe(false);
    expect(text(r, "51 code")).toBe(false);
  });

  it("finds phrases within one string value of metadata or changes", () => {
    expect(text(r, "retry tomorrow")).toBe(true);
    expect(text(r, "first value")).toBe(true);
    expect(text(r, "deep text")).toBe(true);
    expect(text(r, "active user")).toBe(true);
    expect(text(r, "closed")).toBe(true);
  });

  it("never across values, across message and values, or in keys and numbers", () => {
    expect(text(r, "value second")).toBe(false);
    expect(text(r, "51 retry")).toBe(false);
    expect(text(r, "please first")).toBe(false);
    expect(text(r, "note")).toBe(false);
    expect(text(r, "status")).toBe(false);
    expect(text(r, "42")).toBe(false);
  });

  it("negation inverts", () => {
    expect(text(r, "card", true)).toBe(false);
    expect(text(r, "nothing", true)).toBe(true);
    expect(text(record({ metadata: null, changes: null, message: "" }), "x", true)).toBe(true);
  });

  it("containsPhrase: consecutive, and an empty phrase matches nothing", () => {
    expect(containsPhrase(["a", "b", "a", "b", "c"], ["a", "b", "c"])).toBe(true);
    expect(containsPhrase(["a", "b"], ["a", "b", "c"])).toBe(false);
    expect(containsPhrase(["a"], [])).toBe(false);
    expect(matchesCondition(r, { kind: "text", words: [], negate: false })).toBe(false);
  });

  it("reflects the record's content even when asked repeatedly (cache per record object)", () => {
    const a = record({ message: "alpha" });
    const b = record({ message: "beta" });
    expect(text(a, "alpha")).toBe(true);
    expect(text(b, "alpha")).toBe(false);
    expect(text(a, "alpha")).toBe(true);
  });
});

describe("compareForSort", () => {
  const t = 1_000_000n;
  const a = record({ occurredAt: t, sequence: 5n });
  const b = record({ occurredAt: t, sequence: 6n });
  const c = record({ occurredAt: t + 1n, sequence: 1n });

  it("orders by occurred_at, then sequence", () => {
    expect([c, b, a].sort((x, y) => compareForSort(x, y, "asc"))).toEqual([a, b, c]);
    expect([a, c, b].sort((x, y) => compareForSort(x, y, "desc"))).toEqual([c, b, a]);
    expect(compareForSort(a, a, "asc")).toBe(0);
    expect(compareForSort(a, b, "asc")).toBeLessThan(0);
    expect(compareForSort(a, b, "desc")).toBeGreaterThan(0);
    expect(compareForSort(b, c, "asc")).toBeLessThan(0);
  });
});
