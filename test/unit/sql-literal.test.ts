import pg from "pg";
import { describe, expect, it } from "vitest";
import { inlineParams, sqlString } from "../../src/store/sql-literal.ts";

describe("sqlString", () => {
  it("writes every string as pg's escapeLiteral does", () => {
    const samples = [
      "",
      "plain",
      "it's",
      "''",
      "back\\slash",
      "both ' and \\",
      "\\'",
      "tab\there\nnewline",
      "ünïcødé ✓ 🎉",
      "E'x'",
      "a'b\\c'd\\\\e",
      " ",
    ];
    for (const s of samples) expect(sqlString(s), s).toBe(pg.escapeLiteral(s));
  });
});

describe("inlineParams (COPY and simple queries take no bind parameters)", () => {
  it("writes every value in as a literal, once, whatever it holds", () => {
    const values: unknown[] = [
      `x'); DROP TABLE events; --`,
      ["a", `b'\\c`],
      [],
      51,
      "$2 \\ '",
      ...Array.from({ length: 6 }, (_, i) => `v${i}`),
    ];
    const text = "a = $1 AND b = ANY($2::text[]) AND c = ANY($3::text[]) LIMIT $4 -- $5 $11";
    expect(inlineParams({ text, values })).toBe(
      `a = 'x''); DROP TABLE events; --' AND b = ANY(ARRAY['a',  E'b''\\\\c']::text[]) AND c = ANY('{}'::text[]) LIMIT 51 --  E'$2 \\\\ ''' 'v5'`,
    );
  });

  it("writes null as NULL and a bigint as its digits", () => {
    expect(inlineParams({ text: "($1, $2, $3)", values: [null, 9007199254740993n, ["1", "2"]] })).toBe(
      "(NULL, 9007199254740993, ARRAY['1', '2'])",
    );
  });

  it("refuses a missing value and a value it cannot write", () => {
    expect(() => inlineParams({ text: "$2", values: ["a"] })).toThrow(/no value for \$2/);
    expect(() => inlineParams({ text: "$1", values: [{}] })).toThrow(/no SQL literal/);
    expect(() => inlineParams({ text: "$1", values: [1.5] })).toThrow(/no SQL literal/);
  });
});
