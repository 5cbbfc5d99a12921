// The hand-written Struct decoder must give exactly what protobuf-es gives
// for a Struct field, for any bytes: the result is hashed into the chain.
// The reference is protobuf-es itself, decoding an Event whose only field is
// `metadata` with the bytes under test (an event on its own: its Struct is
// at depth 2, which the decoder is told).
import { isDeepStrictEqual } from "node:util";
import { create, fromBinary, type JsonObject, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type Struct, StructSchema, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { mergeStructBinary, structFromOccurrences } from "../../src/domain/struct-binary.ts";

const METADATA_FIELD = 10;
const DEPTH_IN_EVENT = 2;

/** An Event encoding holding `structs` as its metadata field, one occurrence each. */
function eventWithMetadata(...structs: Uint8Array[]): Uint8Array {
  const w = new BinaryWriter();
  for (const s of structs) w.tag(METADATA_FIELD, WireType.LengthDelimited).bytes(s);
  return w.finish();
}

type Outcome = { ok: true; value: JsonObject | undefined } | { ok: false };

function reference(...structs: Uint8Array[]): Outcome {
  try {
    return { ok: true, value: fromBinary(EventSchema, eventWithMetadata(...structs)).metadata };
  } catch {
    return { ok: false };
  }
}

function ours(...structs: Uint8Array[]): Outcome {
  try {
    return { ok: true, value: structFromOccurrences(structs, DEPTH_IN_EVENT) };
  } catch {
    return { ok: false };
  }
}

/** Equal values (NaN equals NaN, -0 is not 0) with the keys of every object in the same order. */
function sameJson(a: unknown, b: unknown): boolean {
  if (!isDeepStrictEqual(a, b)) return false;
  if (a === null || typeof a !== "object") return true;
  if (Array.isArray(a)) return a.every((v, i) => sameJson(v, (b as unknown[])[i]));
  const ka = Object.keys(a);
  const kb = Object.keys(b as object);
  return isDeepStrictEqual(ka, kb) && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function expectSame(...structs: Uint8Array[]): Outcome {
  const want = reference(...structs);
  const got = ours(...structs);
  expect(got.ok, `protobuf-es ${want.ok ? "decoded" : "refused"} it`).toBe(want.ok);
  if (want.ok && got.ok)
    expect(sameJson(got.value, want.value), `${JSON.stringify(got.value)} vs ${JSON.stringify(want.value)}`).toBe(true);
  return want;
}

// A deterministic generator (xorshift), so that a failure can be replayed.
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const KEYS = ["a", "b", "plan", "__proto__", "constructor", "0", "1", "10", "", "é", "日本", "a.b", "toString", "x y"];
const STRINGS = ["", "text", "é", "日本語", "😀", "a\u0000b", "\ufeffbom", "x".repeat(40), "line\nbreak"];
const NUMBERS = [0, -0, 1, -1.5, 1e308, -1e-308, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53 + 2];

function randomValue(r: () => number, depth: number): Value {
  const kind = Math.floor(r() * (depth > 4 ? 5 : 7));
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const v = (k: Value["kind"]) => create(ValueSchema, { kind: k });
  switch (kind) {
    case 0:
      return v({ case: "nullValue", value: 0 });
    case 1:
      return v({ case: "numberValue", value: pick(NUMBERS) });
    case 2:
      return v({ case: "stringValue", value: pick(STRINGS) });
    case 3:
      return v({ case: "boolValue", value: r() < 0.5 });
    case 4:
      return v({ case: undefined });
    case 5:
      return v({ case: "structValue", value: randomStruct(r, depth + 1) });
    default:
      return v({
        case: "listValue",
        value: {
          $typeName: "google.protobuf.ListValue",
          values: Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1)),
        },
      });
  }
}

function randomStruct(r: () => number, depth: number): Struct {
  const fields: Record<string, Value> = {};
  for (let i = Math.floor(r() * 6); i > 0; i--) {
    const key = KEYS[Math.floor(r() * KEYS.length)]!;
    Object.defineProperty(fields, key, { value: randomValue(r, depth), enumerable: true, writable: true, configurable: true });
  }
  return create(StructSchema, { fields });
}

const encode = (s: Struct) => toBinary(StructSchema, s);

describe("mergeStructBinary equals protobuf-es", () => {
  it("on 2,000 random Structs: every kind, special keys and numbers, nesting", () => {
    const r = rng(20261130);
    for (let i = 0; i < 2000; i++) expect(expectSame(encode(randomStruct(r, 0))).ok).toBe(true);
  });

  it("merges a Struct sent several times, and an entry's value sent twice, as protobuf does", () => {
    const r = rng(7);
    for (let i = 0; i < 300; i++) expectSame(encode(randomStruct(r, 0)), encode(randomStruct(r, 0)), encode(randomStruct(r, 0)));
    // One map entry with two values: a struct then a struct merge, a list then a list append, a scalar replaces.
    for (const [first, second] of [
      [{ x: 1 }, { y: 2 }],
      [[1], [2, 3]],
      [{ x: 1 }, "s"],
      ["s", { x: 1 }],
      [null, [1]],
    ] as [JsonValue, JsonValue][]) {
      const a = valueBytes(first);
      const b = valueBytes(second);
      const w = new BinaryWriter();
      w.tag(1, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).string("k");
      w.tag(2, WireType.LengthDelimited).bytes(a);
      w.tag(2, WireType.LengthDelimited).bytes(b);
      w.join();
      expect(expectSame(w.finish()).ok).toBe(true);
    }
  });

  it("reads entries without a key or a value, unknown fields and groups as protobuf-es does", () => {
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).fork().join(); // empty entry: "" -> null
    w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string("only-key").join();
    w.tag(1, WireType.LengthDelimited)
      .fork()
      .tag(2, WireType.LengthDelimited)
      .fork()
      .tag(3, WireType.LengthDelimited)
      .string("v")
      .join()
      .join();
    w.tag(9, WireType.Varint).uint32(5); // unknown field in the Struct
    w.tag(1, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string("g")
      .tag(7, WireType.StartGroup)
      .tag(1, WireType.Varint)
      .uint32(1)
      .tag(7, WireType.EndGroup)
      .join();
    w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string("n");
    w.tag(2, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int32(7).tag(12, WireType.Bit32).fixed32(1).join().join();
    const out = expectSame(w.finish());
    // The keyless entry with a value comes after the empty one and replaces it.
    expect(out).toEqual({ ok: true, value: { "": "v", "only-key": null, g: null, n: null } });
  });

  it("refuses what protobuf-es refuses: invalid UTF-8, truncation, bad tags, nesting past the recursion limit", () => {
    const badUtf8 = new BinaryWriter();
    badUtf8
      .tag(1, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .bytes(new Uint8Array([0xc3, 0x28]))
      .join();
    expect(expectSame(badUtf8.finish()).ok).toBe(false);
    const badValue = new BinaryWriter();
    badValue.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string("k");
    badValue
      .tag(2, WireType.LengthDelimited)
      .fork()
      .tag(3, WireType.LengthDelimited)
      .bytes(new Uint8Array([0xff]))
      .join()
      .join();
    expect(expectSame(badValue.finish()).ok).toBe(false);
    const whole = encode(randomStruct(rng(3), 0));
    for (let cut = 1; cut < whole.length; cut++) expectSame(whole.subarray(0, cut));
    expect(expectSame(new Uint8Array([0x07])).ok).toBe(false); // wire type 7
    // Nesting: each JSON level is a Value and a Struct; find where protobuf-es stops and check both sides of it.
    // Ending in a number (a Value message) or an empty Struct puts the deepest message at an odd or an even depth.
    for (const scalar of [false, true]) {
      const outcomes = Array.from({ length: 13 }, (_, i) => expectSame(encode(nested(40 + i, scalar))).ok);
      expect(outcomes[0]).toBe(true);
      expect(outcomes.at(-1)).toBe(false);
    }
  });

  it("agrees on 20,000 corrupted encodings (bytes changed, inserted, dropped)", () => {
    const r = rng(99);
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = Uint8Array.from(encode(randomStruct(r, 0)));
      if (bytes.length === 0) continue;
      const at = Math.floor(r() * bytes.length);
      const mode = Math.floor(r() * 3);
      let mutated: Uint8Array;
      if (mode === 0) {
        bytes[at] = Math.floor(r() * 256);
        mutated = bytes;
      } else if (mode === 1) mutated = Uint8Array.from([...bytes.subarray(0, at), Math.floor(r() * 256), ...bytes.subarray(at)]);
      else mutated = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
      if (!expectSame(mutated).ok) refused++;
    }
    // Both outcomes were exercised.
    expect(refused).toBeGreaterThan(1000);
    expect(refused).toBeLessThan(19_000);
  });

  it("merges into the object it is given", () => {
    const target: JsonObject = { kept: true };
    const out = mergeStructBinary(
      target,
      encode(create(StructSchema, { fields: { added: { kind: { case: "numberValue", value: 1 } } } })),
      1,
    );
    expect(out).toBe(target);
    expect(target).toEqual({ kept: true, added: 1 });
    expect(structFromOccurrences([], 1)).toBeUndefined();
  });
});

function kindOf(v: JsonValue): Value["kind"] {
  if (v === null) return { case: "nullValue", value: 0 };
  if (typeof v === "number") return { case: "numberValue", value: v };
  if (typeof v === "string") return { case: "stringValue", value: v };
  if (typeof v === "boolean") return { case: "boolValue", value: v };
  if (Array.isArray(v)) return { case: "listValue", value: { $typeName: "google.protobuf.ListValue", values: v.map((x) => jsonValue(x)) } };
  return {
    case: "structValue",
    value: create(StructSchema, { fields: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)])) }),
  };
}

function jsonValue(v: JsonValue): Value {
  return create(ValueSchema, { kind: kindOf(v) });
}

/** The bytes of a google.protobuf.Value holding `v`. */
function valueBytes(v: JsonValue): Uint8Array {
  return toBinary(ValueSchema, jsonValue(v));
}

/** {"n": {"n": ... {}}} nested `levels` deep, with {"n": 1} innermost when `scalar`. */
function nested(levels: number, scalar: boolean): Struct {
  let s = scalar ? create(StructSchema, { fields: { n: jsonValue(1) } }) : create(StructSchema);
  for (let i = 0; i < levels; i++) s = create(StructSchema, { fields: { n: { kind: { case: "structValue", value: s } } } });
  return s;
}
