import { describe, expect, it } from "vitest";
import { canonicalJson, type Json, jsonString } from "../../src/domain/json-canonical.ts";

describe("canonicalJson", () => {
  it("encodes scalars like JSON.stringify", () => {
    expect(canonicalJson(null)).toBe("null");
    expect(canonicalJson(true)).toBe("true");
    expect(canonicalJson(false)).toBe("false");
    expect(canonicalJson("a")).toBe('"a"');
    expect(canonicalJson("")).toBe('""');
    expect(canonicalJson(0)).toBe("0");
  });

  it("sorts object keys, so key insertion order does not matter", () => {
    const a = canonicalJson({ b: 1, a: 2, c: 3 });
    const b = canonicalJson({ c: 3, a: 2, b: 1 });
    expect(a).toBe('{"a":2,"b":1,"c":3}');
    expect(b).toBe(a);
  });

  it("sorts keys of nested objects, including objects inside arrays", () => {
    const x: Json = { z: { y: 1, x: [{ b: true, a: null }] }, a: { d: "d", c: "c" } };
    const y: Json = { a: { c: "c", d: "d" }, z: { x: [{ a: null, b: true }], y: 1 } };
    expect(canonicalJson(x)).toBe('{"a":{"c":"c","d":"d"},"z":{"x":[{"a":null,"b":true}],"y":1}}');
    expect(canonicalJson(y)).toBe(canonicalJson(x));
  });

  it("sorts keys by UTF-16 code unit, not by locale", () => {
    // Code-unit order: "B" (0x42) < "_" (0x5f) < "a" (0x61) < "é" (0xe9) < "😀" (0xd83d...) < "ｚ" (0xff5a)
    const v = { a: 1, ｚ: 2, "😀": 3, B: 4, é: 5, _: 6 };
    expect(canonicalJson(v)).toBe('{"B":4,"_":6,"a":1,"é":5,"😀":3,"ｚ":2}');
    // localeCompare would put "_" first and "B" after "a"; make sure that is not what we do.
    expect(canonicalJson({ b: 1, B: 2 })).toBe('{"B":2,"b":1}');
    // A prefix sorts before the longer key.
    expect(canonicalJson({ ab: 1, a: 2 })).toBe('{"a":2,"ab":1}');
  });

  it("keeps array order", () => {
    expect(canonicalJson([3, 1, 2])).toBe("[3,1,2]");
    expect(canonicalJson(["b", "a"])).not.toBe(canonicalJson(["a", "b"]));
    expect(canonicalJson([[2, 1], { b: 1, a: 1 }, []])).toBe('[[2,1],{"a":1,"b":1},[]]');
  });

  it("writes no white space", () => {
    const text = canonicalJson({ a: [1, { b: "x y" }], c: {} });
    expect(text).toBe('{"a":[1,{"b":"x y"}],"c":{}}');
  });

  it("writes numbers in their shortest round-trip form", () => {
    expect(canonicalJson(1.0)).toBe("1");
    expect(canonicalJson(-0)).toBe("0");
    expect(canonicalJson(0.1 + 0.2)).toBe("0.30000000000000004");
    expect(canonicalJson(1e21)).toBe("1e+21");
    expect(canonicalJson(1e-7)).toBe("1e-7");
    expect(canonicalJson(-12.5)).toBe("-12.5");
    expect(canonicalJson(Number.MAX_SAFE_INTEGER)).toBe("9007199254740991");
    expect(canonicalJson(Number.MAX_VALUE)).toBe("1.7976931348623157e+308");
    expect(canonicalJson(5e-324)).toBe("5e-324");
    // Every number survives a round trip through the text.
    for (const n of [0.1, 1 / 3, 123456789.123, -1e-300, 2 ** 53 + 2]) {
      expect(JSON.parse(canonicalJson(n))).toBe(n);
    }
  });

  it("escapes strings as JSON and keeps non-ASCII text as is", () => {
    expect(canonicalJson('a"b\\c\n\t')).toBe('"a\\"b\\\\c\\n\\t"');
    expect(canonicalJson("\u0001")).toBe('"\\u0001"');
    expect(canonicalJson("héllo wörld ✓ 日本 😀")).toBe('"héllo wörld ✓ 日本 😀"');
    expect(canonicalJson({ ключ: "значение" })).toBe('{"ключ":"значение"}');
  });

  it("distinguishes precomposed and decomposed Unicode (no normalisation)", () => {
    const nfc = "\u00e9"; // é
    const nfd = "e\u0301"; // e + combining acute
    expect(canonicalJson(nfc)).not.toBe(canonicalJson(nfd));
  });

  it("escapes lone surrogates so the output is well-formed", () => {
    const text = canonicalJson("a\ud800b");
    expect(text).toBe('"a\\ud800b"');
    expect(text.isWellFormed()).toBe(true);
  });

  it("is the same text as JSON.parse would give back (output is valid JSON)", () => {
    const v: Json = { n: [1, 2.5, -3], s: 'x"y', o: { deep: { er: [null, true] } } };
    expect(JSON.parse(canonicalJson(v))).toEqual(v);
  });

  it("rejects NaN and the infinities, also when nested", () => {
    expect(() => canonicalJson(Number.NaN)).toThrow(/non-finite/);
    expect(() => canonicalJson(Number.POSITIVE_INFINITY)).toThrow(/non-finite/);
    expect(() => canonicalJson(Number.NEGATIVE_INFINITY)).toThrow(/non-finite/);
    expect(() => canonicalJson({ a: { b: [1, Number.NaN] } })).toThrow(/non-finite number NaN/);
    expect(() => canonicalJson([Number.POSITIVE_INFINITY])).toThrow(/Infinity/);
  });

  it("distinguishes values that differ only in type", () => {
    const texts = [1, "1", true, "true", null, "null", [1], { 1: 1 }].map((v) => canonicalJson(v as Json));
    expect(new Set(texts).size).toBe(texts.length);
  });
});

describe("jsonString", () => {
  it("equals JSON.stringify on strings of every kind of code unit: controls, quotes, backslashes, paired and lone surrogates", () => {
    const units = [
      0x00, 0x08, 0x09, 0x0a, 0x1f, 0x20, 0x22, 0x27, 0x2f, 0x41, 0x5c, 0x7f, 0xe9, 0x2028, 0x2029, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xfeff,
      0xffff,
    ];
    let x = 7;
    const next = () => {
      x = (x * 48271) % 2147483647;
      return x;
    };
    const samples = ["", "plan", "日本語", "😀", "a\u0000b", '"quoted"', "back\\slash", "\ud83d", "\ude00x", "x\ud83d\ude00y"];
    for (let i = 0; i < 20_000; i++) {
      let s = "";
      for (let n = next() % 12; n > 0; n--)
        s += String.fromCharCode(next() % 3 === 0 ? units[next() % units.length]! : 0x61 + (next() % 26));
      samples.push(s);
    }
    for (const s of samples) expect(jsonString(s), JSON.stringify(s)).toBe(JSON.stringify(s));
  });
});
