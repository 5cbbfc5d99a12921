import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ActorType, Outcome, Severity } from "../../gen/auditlog/v1/event_pb.js";
import { EventFilterSchema } from "../../gen/auditlog/v1/query_pb.js";
import type { SeverityName } from "../../src/domain/event-record.ts";
import { MAX_MICROS, MIN_MICROS } from "../../src/domain/timestamp.ts";
import {
  boundedQuery,
  FilterFieldError,
  timeCondition,
  type Condition,
  type EventQuery,
  queryFromFilter,
  severitiesAtLeast,
  TERM_FIELDS,
  textConditions,
  words,
} from "../../src/domain/event-query.ts";

const filter = (init: MessageInitShape<typeof EventFilterSchema>) => create(EventFilterSchema, init);
const of = <K extends Condition["kind"]>(q: EventQuery, kind: K) =>
  q.conditions.filter((c): c is Extract<Condition, { kind: K }> => c.kind === kind);
const termsFor = (q: EventQuery, field: string) => of(q, "terms").filter((c) => c.field === field);

const ALL_SEVERITIES: SeverityName[] = ["INFO", "WARNING", "ERROR", "CRITICAL"];

/** The severities an event may have and still match `q` (the conditions are a conjunction). */
function admittedSeverities(q: EventQuery): SeverityName[] {
  if (of(q, "none").length) return [];
  return ALL_SEVERITIES.filter((s) => termsFor(q, "severity").every((c) => c.values.includes(s)));
}

/** Whether an event at `t` can match the time conditions of `q`. */
function admitsTime(q: EventQuery, t: bigint): boolean {
  if (of(q, "none").length) return false;
  return of(q, "time").every((c) => (c.from === null || t >= c.from) && (c.to === null || t < c.to));
}

/** True when the query's time conditions cannot all hold for any time. */
function timeMatchesNothing(q: EventQuery): boolean {
  if (of(q, "none").length) return true;
  let from: bigint | null = null;
  let to: bigint | null = null;
  for (const c of of(q, "time")) {
    if (c.from !== null && (from === null || c.from > from)) from = c.from;
    if (c.to !== null && (to === null || c.to < to)) to = c.to;
  }
  return from !== null && to !== null && from >= to;
}

describe("queryFromFilter", () => {
  it("turns no filter and an empty filter into a query without conditions", () => {
    expect(queryFromFilter(undefined)).toEqual({ conditions: [] });
    expect(queryFromFilter(filter({}))).toEqual({ conditions: [] });
  });

  it("splits actions into exact names and prefixes (`customer.*` -> `customer.`)", () => {
    const q = queryFromFilter(filter({ actions: ["customer.*", "invoice.billed", "a.b.*", "user.login"] }));
    expect(of(q, "action")).toEqual([{ kind: "action", exact: ["invoice.billed", "user.login"], prefixes: ["customer.", "a.b."] }]);
  });

  it("keeps the dot of a prefix so `customer.*` does not match `customers.created`", () => {
    const [c] = of(queryFromFilter(filter({ actions: ["customer.*"] })), "action");
    expect(c!.exact).toEqual([]);
    expect(c!.prefixes).toEqual(["customer."]);
    expect("customer.address.changed".startsWith(c!.prefixes[0]!)).toBe(true);
    expect("customers.created".startsWith(c!.prefixes[0]!)).toBe(false);
  });

  it("turns each plain list into a terms condition on its dotted field, without duplicates", () => {
    const q = queryFromFilter(
      filter({
        ids: ["e1", "e1", "e2"],
        actorIds: ["u1"],
        actorIps: ["192.0.2.1"],
        sessionIds: ["s"],
        targetTypes: ["customer"],
        targetIds: ["c1"],
        requestIds: ["r"],
        traceIds: ["t"],
        sources: ["billing"],
        locations: ["eu"],
      }),
    );
    expect(of(q, "terms")).toEqual([
      { kind: "terms", field: "id", values: ["e1", "e2"] },
      { kind: "terms", field: "actor.id", values: ["u1"] },
      { kind: "terms", field: "actor.ip", values: ["192.0.2.1"] },
      { kind: "terms", field: "actor.session_id", values: ["s"] },
      { kind: "terms", field: "target.type", values: ["customer"] },
      { kind: "terms", field: "target.id", values: ["c1"] },
      { kind: "terms", field: "context.request_id", values: ["r"] },
      { kind: "terms", field: "context.trace_id", values: ["t"] },
      { kind: "terms", field: "context.source", values: ["billing"] },
      { kind: "terms", field: "context.location", values: ["eu"] },
    ]);
    expect(q.conditions).toHaveLength(10);
    for (const c of of(q, "terms")) expect(TERM_FIELDS).toContain(c.field);
  });

  it("names enum values as they are stored", () => {
    const q = queryFromFilter(
      filter({
        actorTypes: [ActorType.USER, ActorType.UNSPECIFIED],
        outcomes: [Outcome.DENIED, Outcome.UNKNOWN],
        severities: [Severity.ERROR, Severity.ERROR],
      }),
    );
    expect(termsFor(q, "actor.type")[0]!.values).toEqual(["USER", "UNSPECIFIED"]);
    expect(termsFor(q, "outcome")[0]!.values).toEqual(["DENIED", "UNKNOWN"]);
    expect(termsFor(q, "severity")[0]!.values).toEqual(["ERROR"]);
  });

  it("min_severity alone admits the severities at or above it", () => {
    expect(admittedSeverities(queryFromFilter(filter({ minSeverity: Severity.WARNING })))).toEqual(["WARNING", "ERROR", "CRITICAL"]);
    expect(admittedSeverities(queryFromFilter(filter({ minSeverity: Severity.CRITICAL })))).toEqual(["CRITICAL"]);
    expect(admittedSeverities(queryFromFilter(filter({ minSeverity: Severity.INFO })))).toEqual(ALL_SEVERITIES);
  });

  it("min_severity UNSPECIFIED adds no condition", () => {
    expect(queryFromFilter(filter({ minSeverity: Severity.UNSPECIFIED })).conditions).toEqual([]);
  });

  it("min_severity narrows listed severities", () => {
    const q = queryFromFilter(filter({ severities: [Severity.INFO, Severity.ERROR, Severity.CRITICAL], minSeverity: Severity.WARNING }));
    expect(admittedSeverities(q)).toEqual(["ERROR", "CRITICAL"]);
  });

  it("severities all below min_severity match nothing", () => {
    const q = queryFromFilter(filter({ severities: [Severity.INFO, Severity.WARNING], minSeverity: Severity.ERROR }));
    expect(admittedSeverities(q)).toEqual([]);
  });

  it("converts the time range to microseconds, truncating nanos", () => {
    const q = queryFromFilter(filter({ occurredAfter: { seconds: 100n, nanos: 1_999 }, occurredBefore: { seconds: 200n } }));
    expect(of(q, "time")).toEqual([{ kind: "time", from: 100_000_001n, to: 200_000_000n }]);
    expect(admitsTime(q, 100_000_001n)).toBe(true); // from is inclusive
    expect(admitsTime(q, 100_000_000n)).toBe(false);
    expect(admitsTime(q, 199_999_999n)).toBe(true);
    expect(admitsTime(q, 200_000_000n)).toBe(false); // to is exclusive
  });

  it("keeps a one-sided time range open on the other side", () => {
    expect(of(queryFromFilter(filter({ occurredAfter: { seconds: -5n } })), "time")).toEqual([
      { kind: "time", from: -5_000_000n, to: null },
    ]);
    expect(of(queryFromFilter(filter({ occurredBefore: { seconds: 5n } })), "time")).toEqual([
      { kind: "time", from: null, to: 5_000_000n },
    ]);
  });

  it("an inverted or empty time range matches nothing", () => {
    expect(timeMatchesNothing(queryFromFilter(filter({ occurredAfter: { seconds: 200n }, occurredBefore: { seconds: 100n } })))).toBe(true);
    // [t, t) is empty: the end is exclusive.
    expect(timeMatchesNothing(queryFromFilter(filter({ occurredAfter: { seconds: 100n }, occurredBefore: { seconds: 100n } })))).toBe(true);
    // Equal once truncated to microseconds.
    expect(
      timeMatchesNothing(
        queryFromFilter(filter({ occurredAfter: { seconds: 1n, nanos: 500 }, occurredBefore: { seconds: 1n, nanos: 900 } })),
      ),
    ).toBe(true);
    expect(
      timeMatchesNothing(
        queryFromFilter(filter({ occurredAfter: { seconds: 1n, nanos: 500 }, occurredBefore: { seconds: 1n, nanos: 1_000 } })),
      ),
    ).toBe(false);
  });

  it("splits metadata keys into paths and keeps the values", () => {
    const q = queryFromFilter(
      filter({
        metadata: [
          { key: "plan", values: ["pro", "team"] },
          { key: "card.brand", values: ["visa"] },
          { key: "a.b.c", values: [] },
        ],
      }),
    );
    expect(of(q, "metadata")).toEqual([
      { kind: "metadata", path: ["plan"], values: ["pro", "team"] },
      { kind: "metadata", path: ["card", "brand"], values: ["visa"] },
      { kind: "metadata", path: ["a", "b", "c"], values: [] },
    ]);
  });

  it("turns free text into word conditions", () => {
    const q = queryFromFilter(filter({ text: '  Failed "LOGIN attempt" -bot  ' }));
    expect(of(q, "text")).toEqual([
      { kind: "text", words: ["failed"], negate: false },
      { kind: "text", words: ["login", "attempt"], negate: false },
      { kind: "text", words: ["bot"], negate: true },
    ]);
    expect(queryFromFilter(filter({ text: "   " })).conditions).toEqual([]);
  });

  it("gives equal queries for equal filters (usable for page-token fingerprints)", () => {
    const init = { actions: ["a.*"], minSeverity: Severity.ERROR, metadata: [{ key: "x.y", values: ["1"] }], text: "x" };
    expect(queryFromFilter(filter(init))).toEqual(queryFromFilter(filter(init)));
  });
});

describe("words", () => {
  it("splits at Unicode word boundaries (like Elasticsearch's standard analyzer) and lowercases", () => {
    expect(words("Hello, World! 42 times")).toEqual(["hello", "world", "42", "times"]);
    expect(words("user@example.com")).toEqual(["user", "example.com"]);
    expect(words("user_1 at 10.0.1.2, don't 1.5 café-au-lait")).toEqual(["user_1", "at", "10.0.1.2", "don't", "1.5", "café", "au", "lait"]);
    expect(words("Ünïcödé ÅNGSTRÖM straße")).toEqual(["ünïcödé", "ångström", "straße"]);
    expect(words("日本語")).toEqual(["日本語"]);
    expect(words("--- ... !!!")).toEqual([]);
    expect(words("")).toEqual([]);
  });
});

describe("textConditions", () => {
  it("parses words, quoted phrases and exclusions", () => {
    expect(textConditions('a "b c" -d -"e f"')).toEqual([
      { kind: "text", words: ["a"], negate: false },
      { kind: "text", words: ["b", "c"], negate: false },
      { kind: "text", words: ["d"], negate: true },
      { kind: "text", words: ["e", "f"], negate: true },
    ]);
  });

  it("drops tokens without words, including empty quotes and a lone dash", () => {
    expect(textConditions('"" - -"" ... ')).toEqual([]);
  });

  it("splits a token with punctuation into a phrase of its words", () => {
    expect(textConditions("card=visa;brand")).toEqual([{ kind: "text", words: ["card", "visa", "brand"], negate: false }]);
  });
});

describe("severitiesAtLeast", () => {
  it("lists the severity and everything above it", () => {
    expect(severitiesAtLeast("INFO")).toEqual(ALL_SEVERITIES);
    expect(severitiesAtLeast("WARNING")).toEqual(["WARNING", "ERROR", "CRITICAL"]);
    expect(severitiesAtLeast("ERROR")).toEqual(["ERROR", "CRITICAL"]);
    expect(severitiesAtLeast("CRITICAL")).toEqual(["CRITICAL"]);
  });
});

describe("time bounds are always within the years 1 to 9999", () => {
  it("refuses a filter bound that is not a valid Timestamp, naming it", () => {
    for (const [init, field] of [
      [{ occurredAfter: { seconds: 1n, nanos: -1 } }, "occurred_after"],
      [{ occurredBefore: { seconds: 253_402_300_800n } }, "occurred_before"],
    ] as const) {
      let err: unknown;
      try {
        queryFromFilter(filter(init));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FilterFieldError);
      expect((err as FilterFieldError).field).toBe(field);
    }
  });

  it("drops bounds that every storable time satisfies and matches nothing past the ends", () => {
    expect(timeCondition(MIN_MICROS, MAX_MICROS + 1n)).toEqual({ kind: "time", from: null, to: null });
    expect(timeCondition(MIN_MICROS + 1n, MAX_MICROS)).toEqual({ kind: "time", from: MIN_MICROS + 1n, to: MAX_MICROS });
    expect(timeCondition(MAX_MICROS + 1n, null)).toEqual({ kind: "none" });
    expect(timeCondition(null, MIN_MICROS)).toEqual({ kind: "none" });
    expect(timeCondition(10n, 10n)).toEqual({ kind: "none" });
    expect(timeCondition(-(10n ** 30n), 10n ** 30n)).toEqual({ kind: "time", from: null, to: null });
  });

  it("boundedQuery applies it to the conditions of a query string", () => {
    const q = boundedQuery({
      conditions: [
        { kind: "time", from: null, to: MAX_MICROS + 1n },
        { kind: "terms", field: "id", values: ["a"] },
      ],
    });
    expect(q.conditions).toEqual([
      { kind: "time", from: null, to: null },
      { kind: "terms", field: "id", values: ["a"] },
    ]);
  });
});
