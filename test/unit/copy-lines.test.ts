import { describe, expect, it } from "vitest";
import { finishCopyLines } from "../../src/search/postgres/copy-lines.ts";

/** What `COPY (SELECT <one text column>) TO STDOUT WITH (FORMAT binary)` sends for `lines`. */
function copyBinary(lines: string[], extension = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(19);
  Buffer.from("PGCOPY\n\xff\r\n\0", "latin1").copy(header);
  header.writeUInt32BE(extension.length, 15);
  const rows = lines.map((l) => {
    const text = Buffer.from(l);
    const row = Buffer.alloc(6);
    row.writeUInt16BE(1, 0);
    row.writeUInt32BE(text.length, 2);
    return Buffer.concat([row, text]);
  });
  return Buffer.concat([header, extension, ...rows, Buffer.from([0xff, 0xff])]);
}

function finish(lines: string[]) {
  const buf = copyBinary(lines);
  const f = finishCopyLines(buf);
  const text = buf.subarray(0, f.length).toString("utf8");
  const redone = f.redo.map(([s, e]) => buf.subarray(s, e).toString("utf8"));
  return { text, lines: f.lines, redone };
}

describe("finishCopyLines", () => {
  it("removes jsonb's spaces outside strings and ends every line in a newline", () => {
    const r = finish([
      '{"event":{"id":"a b","metadata":{"a": [1, 2.5, -3], "b": {"c": "x, y: z", "d": true, "e": null}, "f": []}},"hash":"h"}',
      '{"event":{"message":"say \\"hi\\": \\\\","metadata":{"k\\" ": "v \\\\"}},"tenantId":"é 🎉"}',
    ]);
    expect(r.text).toBe(
      '{"event":{"id":"a b","metadata":{"a":[1,2.5,-3],"b":{"c":"x, y: z","d":true,"e":null},"f":[]}},"hash":"h"}\n' +
        '{"event":{"message":"say \\"hi\\": \\\\","metadata":{"k\\" ":"v \\\\"}},"tenantId":"é 🎉"}\n',
    );
    expect(r.lines).toBe(2);
    expect(r.redone).toEqual([]);
    for (const line of r.text.trimEnd().split("\n")) expect(JSON.stringify(JSON.parse(line))).toBe(line);
  });

  it("names the lines whose open content JavaScript would write otherwise", () => {
    const unusual = [
      '{"m": {"b": 1, "10": 2}}', // a key of digits: JavaScript puts it first
      '{"m": {"0": "x"}}',
      '{"m": {"x": 1.50}}', // a fraction ending in 0
      '{"m": {"x": 1234567890123456}}', // 16 digits
      '{"m": {"x": 12345678901234567890}}',
      '{"m": {"x": 0.0000001}}', // below 1e-6: an exponent in JavaScript
      '{"m": {"x": -0.00000012}}',
      '{"m": {"x": 1000000000000000000000}}', // 1e21
      '{"m": {"x": 1e5}}',
    ];
    const usual = [
      '{"m": {"x": 0.000001}}',
      '{"m": {"x": 123456789012345}}',
      '{"m": {"x": 0.5, "y": -12.25, "z": 100, "w": 0}}',
      '{"m": {"x": "10", "y": ["1", "2"], "10a": 1, "": 2}}', // digits as values, a key that is not only digits
      '{"m": {"x": "0.0000001 1.50 12345678901234567"}}', // numbers inside strings are text
    ];
    const r = finish([...unusual, ...usual]);
    expect(r.lines).toBe(unusual.length + usual.length);
    expect(r.redone).toEqual(unusual.map((l) => `${l.replaceAll(": ", ":").replaceAll(", ", ",")}\n`));
  });

  it("reads past a header extension and accepts no rows", () => {
    const buf = copyBinary(['{"a": 1}'], Buffer.from([1, 2, 3]));
    const f = finishCopyLines(buf);
    expect(buf.subarray(0, f.length).toString()).toBe('{"a":1}\n');
    expect(finishCopyLines(copyBinary([]))).toEqual({ length: 0, lines: 0, redo: [] });
  });

  it("refuses anything but a whole binary COPY of one text column", () => {
    expect(() => finishCopyLines(Buffer.from("id\tname\n"))).toThrow(/no signature/);
    // Each case on a copy: finishCopyLines works in place.
    const good = copyBinary(['{"a": "b"}']);
    expect(() => finishCopyLines(Buffer.from(good.subarray(0, good.length - 2)))).toThrow(/no trailer/);
    const twoFields = Buffer.from(good);
    twoFields.writeUInt16BE(2, 19);
    expect(() => finishCopyLines(twoFields)).toThrow(/2 fields/);
    const tooLong = Buffer.from(good);
    tooLong.writeUInt32BE(1000, 21);
    expect(() => finishCopyLines(tooLong)).toThrow(/longer than the output/);
    expect(() => finishCopyLines(copyBinary(['{"a": "b']))).toThrow(/inside a string/);
    expect(() => finishCopyLines(copyBinary(['{"a": "b\\']))).toThrow(/inside a string/);
    expect(() => finishCopyLines(Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"))).toThrow(/too short/);
  });
});
