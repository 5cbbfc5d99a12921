import { describe, expect, it } from "vitest";
import type { Condition } from "../../src/domain/event-query.ts";
import { TERM_FIELDS } from "../../src/domain/event-query.ts";
import { parseInstantNanos, parseQueryString, QuerySyntaxError } from "../../src/domain/query-string.ts";
import { formatMicros, MAX_MICROS, parseMicros } from "../../src/domain/timestamp.ts";

const us = (iso: string) => parseMicros(iso);

/** The error parseQueryString throws for `q`. */
function errorOf(q: string): QuerySyntaxError {
  try {
    parseQueryString(q);
  } catch (err) {
    expect(err).toBeInstanceOf(QuerySyntaxError);
    return err as QuerySyntaxError;
  }
  throw new Error(`expected a syntax error for ${JSON.stringify(q)}`);
}

/** Asserts the error's position and that its message starts with `message` (which ends with the position). */
function expectError(q: string, position: number, message: string) {
  const e = errorOf(q);
  expect(e.position).toBe(position);
  expect(e.message.startsWith(message), `${e.message} should start with ${message}`).toBe(true);
  expect(e.message).toContain(`at position ${position}`);
  return e;
}

describe("parseQueryString: structure", () => {
  it("empty and blank queries have no conditions", () => {
    expect(parseQueryString("")).toEqual([]);
    expect(parseQueryString("  \t\n ")).toEqual([]);
  });

  it("terms combine with AND, in order of first appearance", () => {
    expect(parseQueryString('actor.id:u1 outcome:denied "card declined" action:invoice.billed')).toEqual([
      { kind: "terms", field: "actor.id", values: ["u1"] },
      { kind: "terms", field: "outcome", values: ["DENIED"] },
      { kind: "text", words: ["card", "declined"], negate: false },
      { kind: "action", exact: ["invoice.billed"], prefixes: [] },
    ] satisfies Condition[]);
  });

  it("repeated field:value terms of one field OR-combine into one condition, without duplicates", () => {
    expect(parseQueryString("actor.id:u1 severity:info actor.id:u2 actor.id:u1")).toEqual([
      { kind: "terms", field: "actor.id", values: ["u1", "u2"] },
      { kind: "terms", field: "severity", values: ["INFO"] },
    ]);
  });

  it("aliases and their dotted names are the same field", () => {
    expect(parseQueryString("source:billing-api context.source:auth location:eu request_id:r1 trace_id:t1")).toEqual([
      { kind: "terms", field: "context.source", values: ["billing-api", "auth"] },
      { kind: "terms", field: "context.location", values: ["eu"] },
      { kind: "terms", field: "context.request_id", values: ["r1"] },
      { kind: "terms", field: "context.trace_id", values: ["t1"] },
    ]);
  });

  it("accepts every term field by its dotted name, case-insensitively", () => {
    for (const field of TERM_FIELDS) {
      const value =
        field === "action"
          ? "a.b"
          : field === "severity"
            ? "ERROR"
            : field === "outcome"
              ? "FAILURE"
              : field === "actor.type"
                ? "SYSTEM"
                : "v-1";
      const expected: Condition =
        field === "action" ? { kind: "action", exact: ["a.b"], prefixes: [] } : { kind: "terms", field, values: [value] };
      expect(parseQueryString(`${field}:${value}`)).toEqual([expected]);
      expect(parseQueryString(`${field.toUpperCase()}:${value}`)).toEqual([expected]);
    }
  });

  it("any whitespace separates terms", () => {
    expect(parseQueryString("\tactor.id:a\n\nactor.id:b ")).toEqual([{ kind: "terms", field: "actor.id", values: ["a", "b"] }]);
  });
});

describe("parseQueryString: values", () => {
  it('quoted values keep spaces and unescape \\" and \\\\', () => {
    expect(parseQueryString('actor.name:"Ada Lovelace"')).toEqual([{ kind: "terms", field: "actor.name", values: ["Ada Lovelace"] }]);
    expect(parseQueryString('target.name:"say \\"hi\\" \\\\ \\n"')).toEqual([
      { kind: "terms", field: "target.name", values: ['say "hi" \\ \\n'] },
    ]);
  });

  it("values are taken as written (case, punctuation)", () => {
    expect(parseQueryString("actor.ip:2001:db8::1 target.id:cus_123/x")).toEqual([
      { kind: "terms", field: "actor.ip", values: ["2001:db8::1"] },
      { kind: "terms", field: "target.id", values: ["cus_123/x"] },
    ]);
  });

  it("a quoted empty value matches the empty string for plain fields and metadata", () => {
    expect(parseQueryString('actor.ip:"" metadata.note:""')).toEqual([
      { kind: "terms", field: "actor.ip", values: [""] },
      { kind: "metadata", path: ["note"], values: [""] },
    ]);
  });

  it("a quoted * is a literal value", () => {
    expect(parseQueryString('actor.name:"*" metadata.k:"*"')).toEqual([
      { kind: "terms", field: "actor.name", values: ["*"] },
      { kind: "metadata", path: ["k"], values: ["*"] },
    ]);
  });
});

describe("parseQueryString: enums", () => {
  it("accept names with or without prefix, in any case, and normalise to stored names", () => {
    expect(parseQueryString("severity:warning severity:SEVERITY_ERROR severity:Critical")).toEqual([
      { kind: "terms", field: "severity", values: ["WARNING", "ERROR", "CRITICAL"] },
    ]);
    expect(parseQueryString("outcome:OUTCOME_DENIED outcome:success outcome:outcome_failure outcome:Unknown")).toEqual([
      { kind: "terms", field: "outcome", values: ["DENIED", "SUCCESS", "FAILURE", "UNKNOWN"] },
    ]);
    expect(parseQueryString("actor.type:user actor.type:ACTOR_TYPE_SERVICE actor.type:system actor.type:unspecified")).toEqual([
      { kind: "terms", field: "actor.type", values: ["USER", "SERVICE", "SYSTEM", "UNSPECIFIED"] },
    ]);
  });

  it("severity comparisons expand to the matching severities, each its own AND-ed condition", () => {
    const sev = (q: string) => parseQueryString(q);
    expect(sev("severity>=WARNING")).toEqual([{ kind: "terms", field: "severity", values: ["WARNING", "ERROR", "CRITICAL"] }]);
    expect(sev("severity>ERROR")).toEqual([{ kind: "terms", field: "severity", values: ["CRITICAL"] }]);
    expect(sev("severity<=warning")).toEqual([{ kind: "terms", field: "severity", values: ["INFO", "WARNING"] }]);
    expect(sev("severity<SEVERITY_ERROR")).toEqual([{ kind: "terms", field: "severity", values: ["INFO", "WARNING"] }]);
    expect(sev("severity>=info")).toEqual([{ kind: "terms", field: "severity", values: ["INFO", "WARNING", "ERROR", "CRITICAL"] }]);
    expect(sev("severity>=WARNING severity<CRITICAL")).toEqual([
      { kind: "terms", field: "severity", values: ["WARNING", "ERROR", "CRITICAL"] },
      { kind: "terms", field: "severity", values: ["INFO", "WARNING", "ERROR"] },
    ]);
  });

  it("a comparison no severity meets matches nothing", () => {
    expect(parseQueryString("severity>CRITICAL")).toEqual([{ kind: "none" }]);
    expect(parseQueryString("severity<INFO")).toEqual([{ kind: "none" }]);
  });
});

describe("parseQueryString: action", () => {
  it("exact actions and .* prefixes OR-combine in one action condition", () => {
    expect(parseQueryString("action:customer.* action:invoice.billed action:customer.address.* action:customer.*")).toEqual([
      { kind: "action", exact: ["invoice.billed"], prefixes: ["customer.", "customer.address."] },
    ]);
    expect(parseQueryString("action:customer.created")).toEqual([{ kind: "action", exact: ["customer.created"], prefixes: [] }]);
    expect(parseQueryString('action:"user_x-1.*"')).toEqual([{ kind: "action", exact: [], prefixes: ["user_x-1."] }]);
  });
});

describe("parseQueryString: metadata", () => {
  it("metadata.<path>:value compares the value at the path; repeated values OR-combine", () => {
    expect(parseQueryString("metadata.plan:pro metadata.card.brand:visa metadata.plan:free metadata.seats:12")).toEqual([
      { kind: "metadata", path: ["plan"], values: ["pro", "free"] },
      { kind: "metadata", path: ["card", "brand"], values: ["visa"] },
      { kind: "metadata", path: ["seats"], values: ["12"] },
    ]);
  });

  it("metadata.<path>:* means the key exists, and absorbs values of the same key", () => {
    expect(parseQueryString("metadata.flags.beta:*")).toEqual([{ kind: "metadata", path: ["flags", "beta"], values: [] }]);
    expect(parseQueryString("metadata.plan:pro metadata.plan:*")).toEqual([{ kind: "metadata", path: ["plan"], values: [] }]);
    expect(parseQueryString("metadata.plan:* metadata.plan:pro")).toEqual([{ kind: "metadata", path: ["plan"], values: [] }]);
  });

  it("keeps the case of metadata keys (the prefix is case-insensitive)", () => {
    expect(parseQueryString("Metadata.Plan:Pro metadata.ü-key:ñ")).toEqual([
      { kind: "metadata", path: ["Plan"], values: ["Pro"] },
      { kind: "metadata", path: ["ü-key"], values: ["ñ"] },
    ]);
  });
});

describe("parseQueryString: occurred_at", () => {
  it("bounds map to [from, to) in microseconds", () => {
    expect(parseQueryString("occurred_at>=2026-01-01T00:00:00Z")).toEqual([{ kind: "time", from: us("2026-01-01T00:00:00Z"), to: null }]);
    expect(parseQueryString("occurred_at>2026-01-01T00:00:00Z")).toEqual([
      { kind: "time", from: us("2026-01-01T00:00:00.000001Z"), to: null },
    ]);
    expect(parseQueryString("occurred_at<2026-01-01T00:00:00.5Z")).toEqual([
      { kind: "time", from: null, to: us("2026-01-01T00:00:00.5Z") },
    ]);
    expect(parseQueryString("occurred_at<=2026-01-01T00:00:00.5Z")).toEqual([
      { kind: "time", from: null, to: us("2026-01-01T00:00:00.500001Z") },
    ]);
  });

  it("several bounds intersect into one condition", () => {
    expect(parseQueryString("occurred_at>=2026-01-01 occurred_at<2026-02-01 occurred_at>=2025-01-01 occurred_at<2026-03-01")).toEqual([
      { kind: "time", from: us("2026-01-01T00:00:00Z"), to: us("2026-02-01T00:00:00Z") },
    ]);
  });

  it("a bare date is midnight UTC; offsets are applied; t and z may be lowercase", () => {
    expect(parseQueryString("occurred_at>=2026-03-01")).toEqual([{ kind: "time", from: us("2026-03-01T00:00:00Z"), to: null }]);
    expect(parseQueryString("occurred_at>=2026-03-01T01:30:00+02:00")).toEqual([
      { kind: "time", from: us("2026-02-28T23:30:00Z"), to: null },
    ]);
    expect(parseQueryString("occurred_at<2025-12-31T22:00:00-05:30")).toEqual([
      { kind: "time", from: null, to: us("2026-01-01T03:30:00Z") },
    ]);
    expect(parseQueryString("occurred_at>=2026-03-01t10:00:00z")).toEqual([{ kind: "time", from: us("2026-03-01T10:00:00Z"), to: null }]);
    expect(parseQueryString('occurred_at>="2026-03-01 10:00:00Z"')).toEqual([{ kind: "time", from: us("2026-03-01T10:00:00Z"), to: null }]);
  });

  it("sub-microsecond digits round so that the comparison holds exactly for stored microseconds", () => {
    const t = "2026-01-01T00:00:00.0000015Z"; // 1.5 µs
    expect(parseQueryString(`occurred_at>=${t}`)).toEqual([{ kind: "time", from: 2n + us("2026-01-01T00:00:00Z"), to: null }]);
    expect(parseQueryString(`occurred_at>${t}`)).toEqual([{ kind: "time", from: 2n + us("2026-01-01T00:00:00Z"), to: null }]);
    expect(parseQueryString(`occurred_at<${t}`)).toEqual([{ kind: "time", from: null, to: 2n + us("2026-01-01T00:00:00Z") }]);
    expect(parseQueryString(`occurred_at<=${t}`)).toEqual([{ kind: "time", from: null, to: 2n + us("2026-01-01T00:00:00Z") }]);
    // Before the epoch, floor and ceiling still go the right way.
    const before = "1969-12-31T23:59:59.9999995Z"; // -0.5 µs
    expect(parseQueryString(`occurred_at>=${before}`)).toEqual([{ kind: "time", from: 0n, to: null }]);
    expect(parseQueryString(`occurred_at<=${before}`)).toEqual([{ kind: "time", from: null, to: 0n }]);
  });

  it("handles leap years and the edges of the year range", () => {
    expect(parseQueryString("occurred_at>=2024-02-29")[0]).toEqual({ kind: "time", from: us("2024-02-29T00:00:00Z"), to: null });
    expect(parseQueryString("occurred_at>=2000-02-29")[0]).toEqual({ kind: "time", from: us("2000-02-29T00:00:00Z"), to: null });
    expect(parseQueryString("occurred_at>=0001-01-01")[0]).toEqual({ kind: "time", from: -62135596800000000n, to: null });
    expect(parseQueryString("occurred_at<=9999-12-31T23:59:59.999999Z")[0]).toEqual({ kind: "time", from: null, to: MAX_MICROS + 1n });
    expect(formatMicros(parseInstantNanos("1999-12-31T23:59:59.123456Z")! / 1000n)).toBe("1999-12-31T23:59:59.123456Z");
  });
});

describe("parseQueryString: free text", () => {
  it("bare words and quoted phrases become text conditions via words()", () => {
    expect(parseQueryString('Card "was DECLINED" foo-bar')).toEqual([
      { kind: "text", words: ["card"], negate: false },
      { kind: "text", words: ["was", "declined"], negate: false },
      { kind: "text", words: ["foo", "bar"], negate: false },
    ]);
  });

  it('-word and -"phrase" are negated', () => {
    expect(parseQueryString('-test -"dry run" --x')).toEqual([
      { kind: "text", words: ["test"], negate: true },
      { kind: "text", words: ["dry", "run"], negate: true },
      { kind: "text", words: ["x"], negate: true },
    ]);
  });

  it("terms without words (punctuation, a lone -, an empty phrase) add nothing", () => {
    expect(parseQueryString('- ... "" -"" ::')).toEqual([]);
  });

  it("a colon after something that is not a field name is text", () => {
    expect(parseQueryString("10:30 :x")).toEqual([
      { kind: "text", words: ["10", "30"], negate: false },
      { kind: "text", words: ["x"], negate: false },
    ]);
  });

  it("a URL is a field term unless quoted", () => {
    expectError("see http://example.com", 4, 'query: unknown field "http" at position 4');
    expect(parseQueryString('"http://example.com/a"')).toEqual([{ kind: "text", words: ["http", "example.com", "a"], negate: false }]);
  });

  it("= after an unknown name is text; escapes work inside phrases", () => {
    expect(parseQueryString('a=b "x \\"y\\""')).toEqual([
      { kind: "text", words: ["a", "b"], negate: false },
      { kind: "text", words: ["x", "y"], negate: false },
    ]);
  });
});

describe("parseQueryString: errors", () => {
  it("unknown field, with the list of known fields", () => {
    const e = expectError("actr.id:u1", 0, 'query: unknown field "actr.id" at position 0');
    expect(e.message).toContain("known fields: id, action, actor.id,");
    expect(e.message).toContain("source, location, request_id, trace_id, occurred_at, metadata.<key>");
    expectError("actor.id:u1  foo:bar", 13, 'query: unknown field "foo" at position 13');
    expectError("x constructor:1", 2, 'query: unknown field "constructor" at position 2');
    expectError("severity>=INFO actor<u", 15, 'query: unknown field "actor" at position 15');
  });

  it("unterminated quote, at the opening quote", () => {
    expectError('actor.id:u1 "card declined', 12, "query: unterminated quote at position 12");
    expectError('actor.name:"Ada', 11, "query: unterminated quote at position 11");
    expectError('-"x \\"', 1, "query: unterminated quote at position 1");
  });

  it("invalid time, at the value", () => {
    expectError("occurred_at>=2026-13-01", 13, 'query: invalid time "2026-13-01" at position 13');
    expectError("x occurred_at<2026-02-30", 14, 'query: invalid time "2026-02-30" at position 14');
    expectError("occurred_at<2025-02-29", 12, 'query: invalid time "2025-02-29"');
    expectError("occurred_at<1900-02-29", 12, 'query: invalid time "1900-02-29"');
    expectError("occurred_at>2026-01-01T10:00", 12, 'query: invalid time "2026-01-01T10:00"');
    expectError("occurred_at>2026-01-01T10:00:00", 12, "query: invalid time"); // no offset
    expectError("occurred_at>2026-01-01T24:00:00Z", 12, "query: invalid time");
    expectError("occurred_at>2026-01-01T10:60:00Z", 12, "query: invalid time");
    expectError("occurred_at>2026-01-01T10:00:60Z", 12, "query: invalid time");
    expectError("occurred_at>2026-01-01T10:00:00+24:00", 12, "query: invalid time");
    expectError("occurred_at>2026-01-01T10:00:00.1234567891Z", 12, "query: invalid time");
    expectError("occurred_at>0000-01-01", 12, "query: invalid time");
    expectError("occurred_at>0001-01-01T00:00:00+01:00", 12, "query: invalid time");
    expectError("occurred_at>yesterday", 12, 'query: invalid time "yesterday"');
  });

  it("empty value, at where the value should be", () => {
    expectError("action:", 7, 'query: empty value for "action" at position 7');
    expectError("x action: y", 9, 'query: empty value for "action" at position 9');
    expectError('action:""', 7, 'query: empty value for "action" at position 7');
    expectError("severity>= x", 10, 'query: empty value for "severity" at position 10');
    expectError('outcome:""', 8, 'query: empty value for "outcome" at position 8');
    expectError('occurred_at<""', 12, 'query: empty value for "occurred_at" at position 12');
    expectError("metadata.plan:", 14, 'query: empty value for "metadata.plan" at position 14');
    expectError("actor.id:", 9, 'query: empty value for "actor.id" at position 9');
  });

  it("invalid enum values list the valid ones", () => {
    const e = expectError("severity:warn", 9, 'query: invalid severity "warn" at position 9');
    expect(e.message).toContain("valid values: INFO, WARNING, ERROR, CRITICAL");
    expect(expectError("outcome:OUTCOME_UNSPECIFIED", 8, 'query: invalid outcome "OUTCOME_UNSPECIFIED"').message).toContain(
      "valid values: SUCCESS, FAILURE, DENIED, UNKNOWN",
    );
    expect(expectError("a actor.type:human", 13, 'query: invalid actor.type "human" at position 13').message).toContain(
      "valid values: UNSPECIFIED, USER, SERVICE, SYSTEM",
    );
    expectError("severity>=SEVERITY_", 10, 'query: invalid severity "SEVERITY_"');
  });

  it("invalid actions", () => {
    expectError("action:Customer.created", 7, 'query: invalid action "Customer.created" at position 7');
    expectError("action:*", 7, 'query: invalid action "*"');
    expectError("action:customer*", 7, 'query: invalid action "customer*"');
    expectError("action:customer..x", 7, 'query: invalid action "customer..x"');
  });

  it("negated field terms are not supported", () => {
    expectError("x -action:customer.*", 2, 'query: negation is not supported for field terms ("-action:...") at position 2');
    expectError("-metadata.plan:pro", 0, "query: negation is not supported for field terms");
    expectError("-severity>=ERROR", 0, "query: negation is not supported for field terms");
    expectError("-actr:x", 0, "query: negation is not supported for field terms");
  });

  it("comparisons only for severity and occurred_at; occurred_at needs one; = is not an operator", () => {
    expectError("actor.id>=u1", 8, 'query: "actor.id" does not support ">=" at position 8');
    expectError("action<x", 6, 'query: "action" does not support "<" at position 6');
    expectError("metadata.seats>3", 14, 'query: "metadata.seats" does not support ">" at position 14');
    expectError("occurred_at:2026-01-01", 11, 'query: "occurred_at" needs a comparison at position 11');
    expectError("severity=ERROR", 8, 'query: unsupported operator "=" at position 8');
  });

  it("wildcards only for action prefixes and metadata existence", () => {
    expectError("actor.id:*", 9, 'query: wildcards are not supported for "actor.id" at position 9');
    expectError("target.name:acme*", 16, 'query: wildcards are not supported for "target.name" at position 16');
    expectError("metadata.plan:pr*", 16, 'query: wildcards are not supported for "metadata.plan" at position 16');
  });

  it("invalid metadata keys", () => {
    expectError("metadata:pro", 0, 'query: invalid metadata key "" at position 0');
    expectError("x metadata.:pro", 2, 'query: invalid metadata key "" at position 2');
    expectError("metadata.a..b:1", 0, 'query: invalid metadata key "a..b"');
    expectError("metadata.a.:1", 0, 'query: invalid metadata key "a."');
  });

  it("stray quotes and missing spaces", () => {
    expectError('foo"bar"', 3, "query: unexpected quote inside a word at position 3");
    expectError('actor.id:a"b', 10, "query: unexpected quote inside a value at position 10");
    expectError('"card"declined', 6, 'query: expected a space after the term, found "d" at position 6');
    expectError('actor.name:"Ada"x', 16, 'query: expected a space after the term, found "x" at position 16');
  });

  it("errors are QuerySyntaxError with name and position", () => {
    const e = errorOf("nope:1");
    expect(e.name).toBe("QuerySyntaxError");
    expect(e).toBeInstanceOf(Error);
    expect(e.position).toBe(0);
  });
});
