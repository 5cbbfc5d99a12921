import { describe, expect, it } from "vitest";
import type { Condition } from "../../src/domain/event-query.ts";
import { QUERY_LIMITS, queryLimitProblem } from "../../src/domain/query-limits.ts";
import { parseQueryString, QuerySyntaxError } from "../../src/domain/query-string.ts";

const text = (n: number): Condition[] => Array.from({ length: n }, (_, i) => ({ kind: "text", words: [`w${i}`], negate: i % 2 === 0 }));

describe("queryLimitProblem", () => {
  it("accepts what a person writes, up to each limit", () => {
    expect(queryLimitProblem(parseQueryString('action:customer.* actor.id:u1 severity>=WARNING "card declined" -test'))).toBeNull();
    expect(queryLimitProblem(text(QUERY_LIMITS.maxFreeTextTerms))).toBeNull();
  });

  it("names the limit on free-text terms, negated or not", () => {
    expect(queryLimitProblem(text(17))).toEqual({
      field: "text",
      message: expect.stringMatching(/^17 free-text terms; at most 16 free-text terms/),
    });
  });

  it("bounds words per phrase, wildcards, metadata conditions and values per field", () => {
    expect(queryLimitProblem([{ kind: "text", words: Array.from({ length: 33 }, (_, i) => `w${i}`), negate: false }])?.message).toMatch(
      /at most 32 words per phrase/,
    );
    const prefixes = Array.from({ length: 17 }, (_, i) => `a${i}.`);
    expect(queryLimitProblem([{ kind: "action", exact: [], prefixes }])?.message).toMatch(/^17 wildcards; at most 16 wildcards/);
    const metadata: Condition[] = Array.from({ length: 21 }, (_, i) => ({ kind: "metadata", path: [`k${i}`], values: ["v"] }));
    expect(queryLimitProblem(metadata)).toMatchObject({
      field: "metadata",
      message: expect.stringMatching(/at most 20 metadata conditions/),
    });
    const values = Array.from({ length: 60 }, (_, i) => `u${i}`);
    // Values of one field add up over conditions (filter field and query terms).
    const twice: Condition[] = [
      { kind: "terms", field: "actor.id", values },
      { kind: "terms", field: "actor.id", values },
    ];
    expect(queryLimitProblem(twice)?.message).toBe("120 values for actor.id; at most 100 values per field");
  });
});

describe("parseQueryString limits", () => {
  const error = (q: string) => {
    try {
      parseQueryString(q);
    } catch (err) {
      expect(err).toBeInstanceOf(QuerySyntaxError);
      return err as QuerySyntaxError;
    }
    throw new Error(`accepted ${q}`);
  };

  it("refuses a query longer than the limit", () => {
    const e = error("a ".repeat(1025));
    expect(e.message).toBe("query: longer than 2048 characters (2050) at position 2048; at most 2048 characters");
  });

  it("refuses more than 64 terms, at the first term over", () => {
    const q = Array.from({ length: 65 }, (_, i) => `actor.id:u${i}`).join(" ");
    const e = error(q);
    expect(e.message).toMatch(/^query: more than 64 terms at position \d+; at most 64 terms per query$/);
    expect(q.slice(e.position)).toBe("actor.id:u64");
    expect(() => parseQueryString(Array.from({ length: 64 }, (_, i) => `actor.id:u${i}`).join(" "))).not.toThrow();
  });
});
