import { describe, expect, it } from "vitest";
import { finishCopyLines } from "../../src/search/postgres/copy-lines.ts";

/** What `COPY (SELECT <text columns>) TO STDOUT WITH (FORMAT binary)` sends for `rows`. */
function copyBinary(rows: string[][], extension = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(19);
  Buffer.from("PGCOPY\n\xff\r\n\0", "latin1").copy(header);
  header.writeUInt32BE(extension.length, 15);
  const tuples = rows.map((fields) => {
    const count = Buffer.alloc(2);
    count.writeUInt16BE(fields.length);
    return Buffer.concat([
      count,
      ...fields.map((f) => {
        const text = Buffer.from(f);
        const length = Buffer.alloc(4);
        length.writeUInt32BE(text.length);
        return Buffer.concat([length, text]);
      }),
    ]);
  });
  return Buffer.concat([header, extension, ...tuples, Buffer.from([0xff, 0xff])]);
}

/** Rows of the envelope around open content, as ndjsonLinesSql writes them. */
function finish(open: string[]) {
  const buf = copyBinary(open.map((o) => ['{"event":{"id":"a b"', o, '},"hash":"h"}']));
  const f = finishCopyLines(buf);
  const text = buf.subarray(0, f.length).toString("utf8");
  const redone = f.redo.map(([s, e]) => buf.subarray(s, e).toString("utf8"));
  return { text, lines: f.lines, redone };
}

const line = (open: string) => `{"event":{"id":"a b"${open}},"hash":"h"}\n`;

describe("finishCopyLines", () => {
  it("removes jsonb's spaces outside strings in open content, copies the rest, ends every line in a newline", () => {
    const r = finish([
      ',"metadata":{"a": [1, 2.5, -3], "b": {"c": "x, y: z", "d": true, "e": null}, "f": [], "g": {}}',
      ',"changes":{"before":{"k\\" ": "v \\\\", "say": "\\"hi\\": \\\\"}},"metadata":{"é 🎉": "\\u0001"}',
      "",
    ]);
    expect(r.text).toBe(
      line(',"metadata":{"a":[1,2.5,-3],"b":{"c":"x, y: z","d":true,"e":null},"f":[],"g":{}}') +
        line(',"changes":{"before":{"k\\" ":"v \\\\","say":"\\"hi\\": \\\\"}},"metadata":{"é 🎉":"\\u0001"}') +
        line(""),
    );
    expect(r.lines).toBe(3);
    expect(r.redone).toEqual([]);
    for (const l of r.text.trimEnd().split("\n")) expect(JSON.stringify(JSON.parse(l))).toBe(l);
  });

  it("copies the fields around the open content as they are", () => {
    const buf = copyBinary([['{"x": "a b", "y": 1.50', ',"m":{"k": 1}', " }"], ['{"only": 1.0}']]);
    const f = finishCopyLines(buf);
    expect(buf.subarray(0, f.length).toString()).toBe('{"x": "a b", "y": 1.50,"m":{"k":1} }\n{"only": 1.0}\n');
    expect(f.redo).toEqual([]);
  });

  it("names the lines whose open content JavaScript would write otherwise", () => {
    const unusual = [
      '{"b": 1, "10": 2}', // a key of digits: JavaScript puts it first
      '{"0": "x"}',
      '{"x": {"y": [{"4294967295": 1}]}}',
      '{"x": 1.50}', // a fraction ending in 0
      '{"x": 1234567890123456}', // 16 digits
      '{"x": 12345678901234567890}',
      '{"x": 0.0000001}', // below 1e-6: an exponent in JavaScript
      '{"x": -0.00000012}',
      '{"x": 1000000000000000000000}', // 1e21
      '{"x": 1e5}',
    ];
    const usual = [
      '{"x": 0.000001}',
      '{"x": 123456789012345}',
      '{"x": 0.5, "y": -12.25, "z": 100, "w": 0}',
      '{"x": "10", "y": ["1", "2"], "10a": 1, "": 2, "z": "12"}', // digits as values, keys that are not only digits
      '{"x": "0.0000001 1.50 12345678901234567"}', // numbers inside strings are text
    ];
    const compact = (o: string) => o.replaceAll(": ", ":").replaceAll(", ", ",");
    const r = finish([...unusual, ...usual].map((o) => `,"metadata":${o}`));
    expect(r.lines).toBe(unusual.length + usual.length);
    expect(r.redone).toEqual(unusual.map((o) => line(`,"metadata":${compact(o)}`)));
    expect(r.text).toBe([...unusual, ...usual].map((o) => line(`,"metadata":${compact(o)}`)).join(""));
  });

  it("reads past a header extension and accepts no rows", () => {
    const buf = copyBinary([["", '{"a": 1}']], Buffer.from([1, 2, 3]));
    const f = finishCopyLines(buf);
    expect(buf.subarray(0, f.length).toString()).toBe('{"a":1}\n');
    expect(finishCopyLines(copyBinary([]))).toEqual({ length: 0, lines: 0, redo: [] });
  });

  it("refuses anything but a whole binary COPY of text columns", () => {
    expect(() => finishCopyLines(Buffer.from("id\tname\n"))).toThrow(/no signature/);
    expect(() => finishCopyLines(Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"))).toThrow(/too short/);
    // Each case on a copy: finishCopyLines works in place.
    const good = copyBinary([["", '{"a": "b"}']]);
    expect(() => finishCopyLines(Buffer.from(good.subarray(0, good.length - 2)))).toThrow(/no trailer/);
    const tooLong = Buffer.from(good);
    tooLong.writeUInt32BE(1000, 25);
    expect(() => finishCopyLines(tooLong)).toThrow(/longer than the output/);
    const fieldMissing = Buffer.from(good);
    fieldMissing.writeUInt16BE(3, 19);
    expect(() => finishCopyLines(fieldMissing)).toThrow(/longer than the output/);
    const nullField = Buffer.from(good);
    nullField.writeUInt32BE(0xffffffff, 25);
    expect(() => finishCopyLines(nullField)).toThrow(/a NULL/);
    expect(() => finishCopyLines(copyBinary([["", '{"a": "b']]))).toThrow(/inside a string/);
    expect(() => finishCopyLines(copyBinary([["", '{"a": "b\\']]))).toThrow(/inside a string/);
  });
});
