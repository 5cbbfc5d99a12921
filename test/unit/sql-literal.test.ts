import pg from "pg";
import { describe, expect, it } from "vitest";
import { sqlString } from "../../src/store/sql-literal.ts";

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
