import { describe, expect, it } from "vitest";
import type { Condition, EventQuery } from "../../src/domain/event-query.ts";
import { TERM_FIELDS } from "../../src/domain/event-query.ts";
import { countSql, fromClause, metadataJsonPath, searchSql, type Sql, TERM_COLUMNS, whereClause } from "../../src/search/postgres/sql.ts";

const EVIL = `x'); DROP TABLE events; --`;
const EVIL2 = `O'Brien"; DELETE FROM events WHERE '1'='1`;
const q = (...conditions: Condition[]): EventQuery => ({ conditions });

/** Every condition kind, every value hostile. */
function hostileQuery(): EventQuery {
  return q(
    ...TERM_FIELDS.map((field): Condition => ({ kind: "terms", field, values: [EVIL, EVIL2] })),
    { kind: "action", exact: [EVIL], prefixes: [EVIL2, "customer."] },
    { kind: "time", from: 1_000_000n, to: 2_000_000n },
    { kind: "metadata", path: [EVIL, EVIL2], values: [EVIL] },
    { kind: "metadata", path: [EVIL2], values: [] },
    { kind: "text", words: ["drop", "table"], negate: false },
    { kind: "text", words: [EVIL], negate: true },
  );
}

/** The $n placeholders used in `text`, in order of appearance. */
function placeholders(text: string): number[] {
  return [...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1]));
}

/** Every placeholder refers to a value, and every value is referred to. */
function expectParamsConsistent(sql: Sql): void {
  const used = new Set(placeholders(sql.text));
  const expected = new Set(Array.from({ length: sql.values.length }, (_, i) => i + 1));
  expect(used).toEqual(expected);
}

function expectNoInputInText(sql: Sql): void {
  for (const needle of ["DROP", "DELETE", "O'Brien", "'1'='1", "x')", "; --", "customer."]) {
    expect(sql.text).not.toContain(needle);
  }
}

describe("whereClause", () => {
  it("has only the tenant condition for an empty query, as $1", () => {
    expect(whereClause("tenant-a", q())).toEqual({ text: "tenant_id = $1", values: ["tenant-a"] });
  });

  it("always puts the tenant condition first with $1 = tenant", () => {
    const sql = whereClause("tenant-a", hostileQuery());
    expect(sql.text.startsWith("tenant_id = $1 AND ")).toBe(true);
    expect(sql.values[0]).toBe("tenant-a");
    expect(sql.text.match(/tenant_id/g)).toHaveLength(1);
  });

  it("keeps a hostile tenant id out of the SQL text", () => {
    const sql = whereClause(EVIL, q());
    expect(sql.text).toBe("tenant_id = $1");
    expect(sql.values).toEqual([EVIL]);
  });

  it("passes every value as a bind parameter: no input text appears in the SQL", () => {
    const sql = whereClause("tenant-a", hostileQuery());
    expectNoInputInText(sql);
    expectParamsConsistent(sql);
    // The hostile strings are in the values instead.
    const flat = sql.values.flatMap((v) => (Array.isArray(v) ? v : [v]));
    expect(flat).toContain(EVIL);
    expect(flat).toContain(EVIL2);
  });

  it("maps every term field to its column, with the values as one text[] parameter", () => {
    for (const field of TERM_FIELDS) {
      const sql = whereClause("t", q({ kind: "terms", field, values: ["a", "b"] }));
      expect(sql.text).toBe(`tenant_id = $1 AND ${TERM_COLUMNS[field]} = ANY($2::text[])`);
      expect(sql.values).toEqual(["t", ["a", "b"]]);
    }
    expect(Object.keys(TERM_COLUMNS).sort()).toEqual([...TERM_FIELDS].sort());
    for (const column of Object.values(TERM_COLUMNS)) expect(column).toMatch(/^[a-z_]+$/);
  });

  it("writes one value as = (index order on PostgreSQL 15), several as = ANY", () => {
    expect(whereClause("t", q({ kind: "terms", field: "outcome", values: ["DENIED"] }))).toEqual({
      text: "tenant_id = $1 AND outcome = $2::text",
      values: ["t", "DENIED"],
    });
    expect(whereClause("t", q({ kind: "action", exact: ["user.login"], prefixes: [] }))).toEqual({
      text: "tenant_id = $1 AND (action = $2::text)",
      values: ["t", "user.login"],
    });
  });

  it("matches exact actions and prefixes with OR, prefixes with starts_with", () => {
    const sql = whereClause("t", q({ kind: "action", exact: ["user.login", "user.logout"], prefixes: ["customer.", "invoice."] }));
    expect(sql.text).toBe("tenant_id = $1 AND (action = ANY($2::text[]) OR starts_with(action, $3) OR starts_with(action, $4))");
    expect(sql.values).toEqual(["t", ["user.login", "user.logout"], "customer.", "invoice."]);
  });

  it("uses only starts_with when there are only prefixes (no LIKE, so `_` and `%` are not wildcards)", () => {
    const sql = whereClause("t", q({ kind: "action", exact: [], prefixes: ["a_b%."] }));
    expect(sql.text).toBe("tenant_id = $1 AND (starts_with(action, $2))");
    expect(sql.text).not.toMatch(/LIKE/i);
    expect(sql.values).toEqual(["t", "a_b%."]);
  });

  it("turns the time range into [from, to) with RFC 3339 parameters", () => {
    const both = whereClause("t", q({ kind: "time", from: -1n, to: 1_714_979_289_123_456n }));
    expect(both.text).toBe("tenant_id = $1 AND (occurred_at >= $2::timestamptz AND occurred_at < $3::timestamptz)");
    expect(both.values).toEqual(["t", "1969-12-31T23:59:59.999999Z", "2024-05-06T07:08:09.123456Z"]);
    expect(whereClause("t", q({ kind: "time", from: 0n, to: null })).text).toBe("tenant_id = $1 AND (occurred_at >= $2::timestamptz)");
    expect(whereClause("t", q({ kind: "time", from: null, to: 0n })).text).toBe("tenant_id = $1 AND (occurred_at < $2::timestamptz)");
    expect(whereClause("t", q({ kind: "time", from: null, to: null })).text).toBe("tenant_id = $1 AND true");
  });

  it("compares metadata scalars (or array elements) by text and tests presence when there are no values", () => {
    const withValues = whereClause("t", q({ kind: "metadata", path: ["plan"], values: ["visa", "42"] }));
    expect(withValues.values).toEqual(["t", 'strict $."plan"', ["visa", "42"]]);
    expect(withValues.text).toContain("jsonb_path_query_first(metadata, $2::jsonpath, '{}', true)");
    expect(withValues.text).toContain("jsonb_typeof(x) IN ('string', 'number', 'boolean')");
    expect(withValues.text).toContain("v = ANY($3::text[])");
    const presence = whereClause("t", q({ kind: "metadata", path: ["plan"], values: [] }));
    expect(presence.values).toEqual(["t", 'strict $."plan"']);
    expect(presence.text).toMatch(/^tenant_id = \$1 AND EXISTS \(SELECT x #>> '\{\}' AS v/);
    expect(presence.text).not.toContain("ANY(");
  });

  it("walks a path of several segments through keys that may contain dots, the dotted path bound", () => {
    const sql = whereClause("t", q({ kind: "metadata", path: ["card", "brand"], values: ["visa"] }));
    expect(sql.values).toEqual(["t", "card.brand", ["visa"]]);
    expect(sql.text).toContain("WITH RECURSIVE walk(o, rest) AS (");
    expect(sql.text).toContain("SELECT metadata, $2::text");
    expect(sql.text).toContain("starts_with(w.rest, e.key || '.')");
    expect(sql.text).toContain("v = ANY($3::text[])");
  });

  it("quotes metadata keys inside the jsonpath", () => {
    expect(metadataJsonPath(['we"ird', "a.b"])).toBe('strict $."we\\"ird"."a.b"');
  });

  it("matches text phrases with a bound, regex-escaped pattern", () => {
    const sql = whereClause("t", q({ kind: "text", words: ["a.b", "c*"], negate: false }));
    expect(sql.values[1]).toBe("(^|[^[:alnum:]])a\\.b[^[:alnum:]]+c\\*($|[^[:alnum:]])");
    expect(sql.text).toMatch(/ ~ \$2\)$/);
    expect(sql.text).not.toContain("NOT (");
    const negated = whereClause("t", q({ kind: "text", words: ["bot"], negate: true }));
    expect(negated.text).toMatch(/^tenant_id = \$1 AND NOT \(/);
    expect(negated.values[1]).toBe("(^|[^[:alnum:]])bot($|[^[:alnum:]])");
  });

  it("escapes every regex metacharacter in text words", () => {
    const sql = whereClause("t", q({ kind: "text", words: ["\\^$.*+?()[]{}|"], negate: false }));
    expect(sql.values[1]).toBe("(^|[^[:alnum:]])\\\\\\^\\$\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|($|[^[:alnum:]])");
    // The escaped word, as a JavaScript regex, matches itself literally.
    const body = (sql.values[1] as string).slice("(^|[^[:alnum:]])".length, -"($|[^[:alnum:]])".length);
    expect(new RegExp(`^${body}$`).test("\\^$.*+?()[]{}|")).toBe(true);
  });

  it("turns a `none` condition into false", () => {
    expect(whereClause("t", q({ kind: "none" }))).toEqual({ text: "tenant_id = $1 AND false", values: ["t"] });
  });

  it("joins conditions with AND, numbering parameters in order", () => {
    const sql = whereClause(
      "t",
      q({ kind: "terms", field: "actor.id", values: ["u"] }, { kind: "terms", field: "severity", values: ["ERROR"] }),
    );
    expect(sql.text).toBe("tenant_id = $1 AND actor_id = $2::text AND severity = $3::text");
    expect(sql.values).toEqual(["t", "u", "ERROR"]);
  });
});

describe("searchSql", () => {
  const cols = "id, sequence";

  it("selects, orders and limits the first page, the limit as the last parameter", () => {
    const sql = searchSql("t", q(), "desc", null, 101, cols);
    expect(sql.text).toBe(
      "SELECT id, sequence FROM events WHERE tenant_id = $1 ORDER BY events.occurred_at DESC, events.sequence DESC LIMIT $2",
    );
    expect(sql.values).toEqual(["t", 101]);
  });

  it("orders ascending for asc", () => {
    const sql = searchSql("t", q(), "asc", null, 10, cols);
    expect(sql.text).toMatch(/ORDER BY events.occurred_at ASC, events.sequence ASC LIMIT \$2$/);
  });

  it("continues after the last row with a keyset condition: > for asc, < for desc", () => {
    const after = { occurredAt: 1_714_979_289_123_456n, sequence: 77n };
    const asc = searchSql("t", q({ kind: "terms", field: "actor.id", values: ["u"] }), "asc", after, 50, cols);
    expect(asc.text).toBe(
      "SELECT id, sequence FROM events WHERE tenant_id = $1 AND actor_id = $2::text" +
        " AND (occurred_at, sequence) > ($3::timestamptz, $4::bigint) ORDER BY events.occurred_at ASC, events.sequence ASC LIMIT $5",
    );
    expect(asc.values).toEqual(["t", "u", "2024-05-06T07:08:09.123456Z", "77", 50]);

    const desc = searchSql("t", q(), "desc", after, 50, cols);
    expect(desc.text).toContain("AND (occurred_at, sequence) < ($2::timestamptz, $3::bigint)");
    expect(desc.text).toMatch(/ORDER BY events.occurred_at DESC, events.sequence DESC LIMIT \$4$/);
    expect(desc.values).toEqual(["t", "2024-05-06T07:08:09.123456Z", "77", 50]);
  });

  it("keeps every value a parameter with a hostile query and a page position", () => {
    const sql = searchSql(EVIL, hostileQuery(), "asc", { occurredAt: -5n, sequence: 3n }, 1000, cols);
    expectNoInputInText(sql);
    expectParamsConsistent(sql);
    expect(sql.values[0]).toBe(EVIL);
    expect(sql.values.at(-1)).toBe(1000);
    // Free text reads each row's open text once, from a lateral subquery.
    expect(sql.text).toMatch(
      /^SELECT id, sequence FROM events CROSS JOIN LATERAL \(SELECT .* AS open_text OFFSET 0\) ot WHERE tenant_id = \$1 AND /s,
    );
  });
});

describe("countSql", () => {
  it("counts with the same WHERE clause and parameters", () => {
    const query = hostileQuery();
    const where = whereClause("t", query);
    const sql = countSql("t", query);
    expect(sql.text).toBe(`SELECT count(*)::bigint AS n FROM ${fromClause(query)} WHERE ${where.text}`);
    expect(sql.values).toEqual(where.values);
    expectNoInputInText(sql);
    expectParamsConsistent(sql);
  });
});
