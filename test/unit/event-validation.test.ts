import { create, toBinary, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import { describe, expect, it } from "vitest";
import { type ActorType, type Event, EventSchema, type Outcome, type Severity } from "../../gen/auditlog/v1/event_pb.js";
import { EVENT_LIMITS, encodedSizeBound, type FieldViolation, validateEvent } from "../../src/domain/event-validation.ts";
import { compilePrecheck } from "../../src/domain/rule-precheck.ts";
import { fullEvent, minimalEvent } from "./fixtures.ts";

const validator = createValidator();
const check = (e: Event): FieldViolation[] => validateEvent(validator, e);

/** `levels` nested objects: {k: {k: ... {k: leaf}}}. */
function nested(levels: number, leaf: JsonValue = "leaf"): JsonObject {
  let v: JsonValue = leaf;
  for (let i = 0; i < levels; i++) v = { k: v };
  return v as JsonObject;
}

function objectWithKeys(n: number): JsonObject {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`key${i}`, i]));
}

/** Asserts exactly one violation, at `field`, with a non-empty reason matching `reason`. */
function expectOnly(violations: FieldViolation[], field: string, reason: RegExp): void {
  expect(violations, JSON.stringify(violations)).toHaveLength(1);
  expect(violations[0]!.field).toBe(field);
  expect(violations[0]!.reason).toMatch(reason);
}

describe("validateEvent: valid events", () => {
  it("finds nothing wrong with a minimal event", () => {
    expect(check(minimalEvent())).toEqual([]);
  });

  it("finds nothing wrong with a full event", () => {
    expect(check(fullEvent())).toEqual([]);
  });

  it("accepts IPv4 and IPv6 actor addresses and an empty one", () => {
    for (const ip of ["", "192.0.2.1", "2001:db8::1", "::1"]) {
      expect(check(minimalEvent({ actor: { id: "u", ip } })), ip).toEqual([]);
    }
  });

  it("accepts ids of UUID and ULID shape and an empty id", () => {
    for (const id of ["", "018f4d9e-6a3b-7c2d-9e8f-0123456789ab", "01HZX3J5K6M7N8P9Q0R1S2T3U4", "a", "A.b_c:d-e"]) {
      expect(check(minimalEvent({ id })), id).toEqual([]);
    }
  });

  it("accepts metadata nested exactly 8 levels deep", () => {
    expect(check(minimalEvent({ metadata: nested(8) }))).toEqual([]);
    // Arrays count as a level too: 7 objects + 1 array = 8.
    expect(check(minimalEvent({ metadata: nested(7, ["x"]) }))).toEqual([]);
  });

  it("accepts an object with exactly 256 keys and keys of 256 characters", () => {
    expect(check(minimalEvent({ metadata: objectWithKeys(256) }))).toEqual([]);
    expect(check(minimalEvent({ metadata: { ["k".repeat(256)]: 1 } }))).toEqual([]);
  });

  it("accepts a message of exactly 4096 characters", () => {
    expect(check(minimalEvent({ message: "m".repeat(4096) }))).toEqual([]);
  });

  it("accepts unicode text, including astral characters", () => {
    expect(check(minimalEvent({ message: "日本語 😀", metadata: { ключ: "😀", nested: { é: ["✓"] } } }))).toEqual([]);
  });

  it("accepts an event of exactly 64 KiB encoded", () => {
    const e = minimalEvent({ metadata: { pad: "" } });
    const overhead = toBinary(EventSchema, e).length;
    // Each extra byte of a string this long grows the encoding by one byte,
    // except where the length prefix grows; adjust until the size is exact.
    let padLength = EVENT_LIMITS.maxEncodedBytes - overhead;
    for (;;) {
      e.metadata = { pad: "p".repeat(padLength) };
      const size = toBinary(EventSchema, e).length;
      if (size === EVENT_LIMITS.maxEncodedBytes) break;
      padLength -= size - EVENT_LIMITS.maxEncodedBytes;
    }
    expect(toBinary(EventSchema, e).length).toBe(64 * 1024);
    expect(check(e)).toEqual([]);
    e.metadata = { pad: "p".repeat(padLength + 1) };
    expect(check(e)).toHaveLength(1);
  });
});

describe("validateEvent: the size limit without re-encoding every event", () => {
  // validateEvent only encodes an event when a cheap upper bound of its size
  // exceeds the limit. Events made of many tiny values (where framing, not
  // text, dominates) just over the limit must still be caught.
  it("rejects every event just over 64 KiB, whatever it is made of", () => {
    // Tiny values (framing dominates) and long strings of 3-byte characters
    // (where the bound is tightest).
    const values: JsonValue[] = [
      "",
      "é",
      "😀",
      null,
      true,
      0,
      1.5,
      -1e300,
      [],
      [null],
      {},
      { a: null },
      ["x", [false]],
      "€".repeat(700),
      ["中".repeat(300)],
    ];
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let trial = 0; trial < 12; trial++) {
      const metadata: JsonObject = {};
      const e = minimalEvent({ message: "中".repeat(Math.floor(rnd() * 1000)) });
      const added: [JsonObject, string][] = [];
      const sizeNow = () => toBinary(EventSchema, { ...e, metadata }).length;
      // Grow past the limit in steps, then back off to the last entry that crosses it.
      for (let i = 0; added.length % 50 !== 0 || sizeNow() <= EVENT_LIMITS.maxEncodedBytes; i++) {
        // At most 256 keys per object: 200 per inner object.
        const inner = (metadata[`o${Math.floor(i / 200)}`] ??= {}) as JsonObject;
        const key = `${["k", "ü", "😀"][i % 3]}${i}`;
        inner[key] = values[Math.floor(rnd() * values.length)]!;
        added.push([inner, key]);
      }
      let last: [JsonObject, string, JsonValue] | null = null;
      while (sizeNow() > EVENT_LIMITS.maxEncodedBytes) {
        const [inner, key] = added.pop()!;
        last = [inner, key, inner[key]!];
        delete inner[key];
      }
      last![0][last![1]] = last![2];
      e.metadata = metadata;
      const size = toBinary(EventSchema, e).length;
      expect(size).toBeLessThan(EVENT_LIMITS.maxEncodedBytes + 2200);
      const v = check(e);
      expect(v, `trial ${trial}: ${size} bytes`).toHaveLength(1);
      expect(v[0]!.reason).toBe(`event is ${size} bytes encoded; the limit is ${EVENT_LIMITS.maxEncodedBytes}`);
      expect(encodedSizeBound(e)).toBeGreaterThanOrEqual(size);
    }
  });

  it("bounds the encoded size from above for every kind of content", () => {
    const worst: JsonValue[] = ["", "a", "é", "€€€", "😀", null, false, 0, -0.1, 2 ** 60, [], [[[]]], {}, { "€": "€" }];
    const fixtures = [minimalEvent(), fullEvent(), minimalEvent({ id: "", message: "" })];
    for (const e of fixtures) expect(encodedSizeBound(e)).toBeGreaterThanOrEqual(toBinary(EventSchema, e).length);
    for (const v of worst) {
      for (const n of [1, 10, 200]) {
        const e = fullEvent({
          message: "€".repeat(n),
          actor: { id: "€".repeat(n), name: "😀".repeat(n), userAgent: "é".repeat(n), sessionId: "x" },
          metadata: Object.fromEntries(Array.from({ length: n }, (_, i) => [`€${i}`, v])),
          changes: { before: { l: Array.from({ length: n }, () => v) }, after: { o: { p: v } } },
        });
        expect(encodedSizeBound(e), JSON.stringify(v)).toBeGreaterThanOrEqual(toBinary(EventSchema, e).length);
      }
    }
  });
});

describe("validateEvent: violations name the exact field", () => {
  it("missing occurred_at", () => {
    const e = minimalEvent();
    e.occurredAt = undefined;
    expectOnly(check(e), "occurred_at", /required/);
  });

  it.each([
    ["nanos past a second, read as a later instant outside the window", 9_223_372_035n, 1_999_999_999],
    ["negative nanos", 1_700_000_000n, -1],
    ["nanos of two seconds", 1_700_000_000n, 2_000_000_000],
    ["nanos of exactly one second", 1_700_000_000n, 1_000_000_000],
    ["seconds past year 9999", 253_402_300_800n, 0],
    ["seconds at the int64 minimum", -(2n ** 63n), 0],
  ])("occurred_at with %s", (_name, seconds, nanos) => {
    const e = minimalEvent();
    e.occurredAt = create(TimestampSchema, { seconds, nanos });
    const v = check(e);
    expect(v.length, JSON.stringify(v)).toBeGreaterThan(0);
    expect(
      v.every((x) => x.field === "occurred_at"),
      JSON.stringify(v),
    ).toBe(true);
    // The pre-check never passes what the full validation rejects.
    expect(compilePrecheck(EventSchema)!(e)).toBe(false);
  });

  it.each([
    ["one nanosecond past the window", 9_223_372_036n, 854_775_001],
    ["one nanosecond before 1970", -1n, 999_999_999],
  ])("occurred_at %s", (_name, seconds, nanos) => {
    const e = minimalEvent();
    e.occurredAt = create(TimestampSchema, { seconds, nanos });
    expectOnly(check(e), "occurred_at", /./);
    expect(compilePrecheck(EventSchema)!(e)).toBe(false);
  });

  it("occurred_at at the ends of the window", () => {
    for (const [seconds, nanos] of [
      [0n, 0],
      [1_700_000_000n, 999_999_999],
      [9_223_372_036n, 854_775_000],
    ] as const) {
      const e = minimalEvent();
      e.occurredAt = create(TimestampSchema, { seconds, nanos });
      expect(check(e)).toEqual([]);
    }
  });

  it("missing actor", () => {
    const e = minimalEvent();
    e.actor = undefined;
    expectOnly(check(e), "actor", /required/);
  });

  it("empty actor.id", () => {
    expectOnly(check(minimalEvent({ actor: { id: "" } })), "actor.id", /at least 1/);
  });

  it("actor.id too long", () => {
    expectOnly(check(minimalEvent({ actor: { id: "u".repeat(257) } })), "actor.id", /at most 256/);
  });

  it.each(["Customer Created", "customer created", "Customer.created", "customer..created", ".customer", "customer.", ""])(
    "bad action %j",
    (action) => {
      const v = check(minimalEvent({ action }));
      expect(v.length).toBeGreaterThanOrEqual(1);
      expect(v.every((x) => x.field === "action")).toBe(true);
      expect(v[0]!.reason).not.toBe("");
    },
  );

  it("action with spaces and capitals reports the pattern", () => {
    expectOnly(check(minimalEvent({ action: "Customer Created" })), "action", /pattern/);
  });

  it.each(["-starts-with-dash", "has space", "with/slash", ".dot-first", "ünïcode"])("bad id %j", (id) => {
    expectOnly(check(minimalEvent({ id })), "id", /pattern/);
  });

  it("id over 128 characters", () => {
    const v = check(minimalEvent({ id: "a".repeat(129) }));
    expect(v.map((x) => x.field)).toEqual(["id"]);
    expect(v[0]!.reason).toMatch(/128/);
  });

  it.each(["1.2.3", "256.0.0.1", "not-an-ip", "1.2.3.4/24", "::g"])("actor.ip %j", (ip) => {
    expectOnly(check(minimalEvent({ actor: { id: "u", ip } })), "actor.ip", /IP/);
  });

  it("message over 4096 characters", () => {
    expectOnly(check(minimalEvent({ message: "m".repeat(4097) })), "message", /at most 4096/);
  });

  it("target without a type", () => {
    expectOnly(check(minimalEvent({ target: { id: "x" } })), "target.type", /at least 1/);
  });

  it("context.source over 128 characters", () => {
    expectOnly(check(minimalEvent({ context: { source: "s".repeat(129) } })), "context.source", /at most 128/);
  });

  it("undefined enum values", () => {
    expectOnly(check(minimalEvent({ outcome: 99 as Outcome })), "outcome", /defined/);
    expectOnly(check(minimalEvent({ severity: 99 as Severity })), "severity", /defined/);
    expectOnly(check(minimalEvent({ actor: { id: "u", type: 99 as ActorType } })), "actor.type", /defined/);
  });

  it("metadata nested 9 levels deep, at the object that is too deep", () => {
    expectOnly(check(minimalEvent({ metadata: nested(9) })), "metadata.k.k.k.k.k.k.k.k", /deeper than 8/);
  });

  it("nesting through arrays, with the index in the path", () => {
    // metadata(1) > a(2) > [0](3) > b(4) > [1](5) > c(6) > d(7) > e(8) > f(9): too deep at f.
    const metadata = { a: [{ b: [0, { c: { d: { e: { f: { g: 1 } } } } }] }] } as JsonObject;
    expectOnly(check(minimalEvent({ metadata })), "metadata.a[0].b[1].c.d.e.f", /deeper than 8/);
  });

  it("changes.before and changes.after nested too deep", () => {
    expectOnly(check(minimalEvent({ changes: { before: nested(9) } })), "changes.before.k.k.k.k.k.k.k.k", /deeper/);
    expectOnly(check(minimalEvent({ changes: { after: { x: nested(8) } } })), "changes.after.x.k.k.k.k.k.k.k", /deeper/);
  });

  it("an object with 257 keys", () => {
    expectOnly(check(minimalEvent({ metadata: objectWithKeys(257) })), "metadata", /more than 256 keys/);
    expectOnly(check(minimalEvent({ metadata: { a: { b: objectWithKeys(257) } } })), "metadata.a.b", /more than 256 keys/);
  });

  it("an empty key or a key over 256 characters", () => {
    expectOnly(check(minimalEvent({ metadata: { a: { "": 1 } } })), "metadata.a", /keys must be 1 to 256/);
    expectOnly(check(minimalEvent({ metadata: { ["k".repeat(257)]: 1 } })), "metadata", /keys must be 1 to 256/);
  });

  it("NUL in a string field", () => {
    expectOnly(check(minimalEvent({ message: "a\u0000b" })), "message", /NUL/);
    expectOnly(check(minimalEvent({ actor: { id: "u\u0000" } })), "actor.id", /NUL/);
    expectOnly(check(minimalEvent({ actor: { id: "u", userAgent: "\u0000" } })), "actor.user_agent", /NUL/);
    expectOnly(check(minimalEvent({ context: { requestId: "r\u0000" } })), "context.request_id", /NUL/);
    expectOnly(check(minimalEvent({ target: { type: "t", name: "\u0000" } })), "target.name", /NUL/);
  });

  it("NUL in a metadata value, a metadata key and changes", () => {
    expectOnly(check(minimalEvent({ metadata: { a: { b: "x\u0000" } } })), "metadata.a.b", /NUL/);
    expectOnly(check(minimalEvent({ metadata: { list: ["ok", "\u0000"] } })), "metadata.list[1]", /NUL/);
    expectOnly(check(minimalEvent({ metadata: { a: { "k\u0000": 1 } } })), "metadata.a", /key must not contain NUL/);
    expectOnly(check(minimalEvent({ changes: { after: { s: "\u0000" } } })), "changes.after.s", /NUL/);
  });

  it("a lone surrogate in a metadata value, a key or a string field", () => {
    expectOnly(check(minimalEvent({ metadata: { a: { b: "x\ud800y" } } })), "metadata.a.b", /well-formed/);
    expectOnly(check(minimalEvent({ metadata: { a: ["\udc00"] } })), "metadata.a[0]", /well-formed/);
    expectOnly(check(minimalEvent({ metadata: { ["\ud83d"]: 1 } })), "metadata", /key must be well-formed/);
    expectOnly(check(minimalEvent({ message: "end\ud83d" })), "message", /well-formed/);
  });

  it("NaN and infinite numbers in metadata", () => {
    expectOnly(check(minimalEvent({ metadata: { n: Number.NaN } })), "metadata.n", /finite/);
    expectOnly(check(minimalEvent({ metadata: { a: { b: [1, Number.POSITIVE_INFINITY] } } })), "metadata.a.b[1]", /finite/);
    expectOnly(check(minimalEvent({ changes: { before: { x: Number.NEGATIVE_INFINITY } } })), "changes.before.x", /finite/);
  });

  it("an event over 64 KiB encoded, reported for the whole event", () => {
    const v = check(minimalEvent({ metadata: { big: "y".repeat(70_000) } }));
    expect(v).toHaveLength(1);
    expect(v[0]!.field).toBe("");
    expect(v[0]!.reason).toMatch(/^event is \d+ bytes encoded; the limit is 65536$/);
  });

  it("reports several independent violations together", () => {
    const e = minimalEvent({ action: "Bad Action", actor: { id: "", ip: "1.2.3" }, message: "\u0000", metadata: { n: Number.NaN } });
    const fields = check(e)
      .map((v) => v.field)
      .sort();
    expect(fields).toEqual(["action", "actor.id", "actor.ip", "message", "metadata.n"]);
    for (const v of check(e)) expect(v.reason.length).toBeGreaterThan(0);
  });

  it("stops walking the open structures after 10 violations", () => {
    const metadata = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, "\u0000"]));
    const v = check(minimalEvent({ metadata }));
    expect(v).toHaveLength(10);
    expect(v[0]!.field).toBe("metadata.k0");
  });
});

describe("validateEvent: the access audit's reserved action namespace", () => {
  it("refuses auditlog and auditlog.* on field action, although the contract's pattern (and its pre-check) accept them", () => {
    expect(compilePrecheck(EventSchema)?.(minimalEvent({ action: "auditlog.query.search_events" }))).toBe(true);
    for (const action of ["auditlog", "auditlog.query.search_events", "auditlog.x"]) {
      expectOnly(check(minimalEvent({ action })), "action", /reserved/);
    }
  });

  it("leaves look-alikes alone", () => {
    for (const action of ["auditlogs.x", "my.auditlog.x", "auditlog_x.y"]) expect(check(minimalEvent({ action })), action).toEqual([]);
  });
});
