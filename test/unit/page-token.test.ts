import { describe, expect, it } from "vitest";
import { decodePageToken, encodePageToken, PageTokenError, queryFingerprint } from "../../src/domain/page-token.ts";
import { OCCURRED_AT_MAX_MICROS, OCCURRED_AT_MIN_MICROS } from "../../src/domain/timestamp.ts";

// queryFingerprint takes any JSON-able value (bigints included); a query-like object will do.
const q = {
  conditions: [
    { kind: "terms", field: "actor.id", values: ["u1"] },
    { kind: "time", from: 1_000_000n, to: null },
  ],
};
const fp = queryFingerprint("tenant-a", { query: q, order: "desc" });

describe("page tokens", () => {
  it("round-trip the position", () => {
    const pos = { occurredAt: 1_714_979_289_123_456n, sequence: 42n };
    const token = encodePageToken(fp, pos);
    expect(decodePageToken(token, fp)).toEqual(pos);
  });

  it("round-trip positions at both ends of the occurred_at window and of the sequences", () => {
    for (const pos of [
      { occurredAt: OCCURRED_AT_MIN_MICROS, sequence: 1n },
      { occurredAt: OCCURRED_AT_MAX_MICROS, sequence: 2n ** 63n - 1n },
    ]) {
      expect(decodePageToken(encodePageToken(fp, pos), fp)).toEqual(pos);
    }
  });

  it.each([
    ["time before the window", -1n, 1n],
    ["time after the window", OCCURRED_AT_MAX_MICROS + 1n, 1n],
    ["time past year 9999", 253_402_300_800_000_000n, 1n],
    ["huge time", 10n ** 25n, 1n],
    ["huge negative time", -(10n ** 25n), 1n],
    ["sequence 0", 1n, 0n],
    ["sequence past bigint", 1n, 2n ** 63n],
    ["sequence past uint64", 1n, 2n ** 64n],
    ["huge sequence", 1n, 10n ** 30n],
  ])("reject a forged token with a number out of range (%s)", (_name, occurredAt, sequence) => {
    const token = encodePageToken(fp, { occurredAt, sequence });
    expect(() => decodePageToken(token, fp)).toThrow(PageTokenError);
  });

  it("are URL-safe text", () => {
    const token = encodePageToken(fp, { occurredAt: -123n, sequence: 9n });
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("reject a token made for another query with PageTokenError", () => {
    const other = queryFingerprint("tenant-a", {
      query: { conditions: [{ ...q.conditions[0], values: ["u2"] }, q.conditions[1]] },
      order: "desc",
    });
    expect(other).not.toBe(fp);
    const token = encodePageToken(other, { occurredAt: 1n, sequence: 1n });
    expect(() => decodePageToken(token, fp)).toThrow(PageTokenError);
    expect(() => decodePageToken(token, fp)).toThrow(/different query/);
  });

  it("reject a token made for another tenant with the same query", () => {
    const token = encodePageToken(queryFingerprint("tenant-b", { query: q, order: "desc" }), { occurredAt: 1n, sequence: 1n });
    expect(() => decodePageToken(token, fp)).toThrow(PageTokenError);
  });

  it.each([
    ["empty", ""],
    ["not base64", "!!!!"],
    ["random text", "hello world"],
    ["wrong version", Buffer.from(`2|${"x".repeat(16)}|1|1`).toString("base64url")],
    ["too few parts", Buffer.from(`1|${"x".repeat(16)}|1`).toString("base64url")],
    ["too many parts", Buffer.from(`1|${"x".repeat(16)}|1|1|1`).toString("base64url")],
    ["non-numeric time", Buffer.from(`1|${"x".repeat(16)}|abc|1`).toString("base64url")],
    ["fractional time", Buffer.from(`1|${"x".repeat(16)}|1.5|1`).toString("base64url")],
    ["negative sequence", Buffer.from(`1|${"x".repeat(16)}|1|-1`).toString("base64url")],
    ["empty sequence", Buffer.from(`1|${"x".repeat(16)}|1|`).toString("base64url")],
    ["exponent", Buffer.from(`1|${"x".repeat(16)}|1e5|1`).toString("base64url")],
  ])("reject a malformed token (%s) with PageTokenError", (_name, token) => {
    expect(() => decodePageToken(token, "x".repeat(16))).toThrow(PageTokenError);
    expect(() => decodePageToken(token, "x".repeat(16))).toThrow(/malformed/);
  });

  it("reject a well-formed token whose fingerprint part was tampered with", () => {
    const token = encodePageToken(fp, { occurredAt: 5n, sequence: 6n });
    const text = Buffer.from(token, "base64url").toString("utf8");
    const tampered = Buffer.from(text.replace(fp, "A".repeat(16))).toString("base64url");
    expect(() => decodePageToken(tampered, fp)).toThrow(PageTokenError);
  });

  it("PageTokenError is an Error", () => {
    expect(new PageTokenError("x")).toBeInstanceOf(Error);
  });
});

describe("queryFingerprint", () => {
  it("is 16 URL-safe characters and deterministic", () => {
    expect(fp).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(queryFingerprint("tenant-a", { query: { ...q }, order: "desc" })).toBe(fp);
  });

  it("differs per tenant for the same query", () => {
    const a = queryFingerprint("tenant-a", q);
    const b = queryFingerprint("tenant-b", q);
    expect(a).not.toBe(b);
  });

  it("differs per query and per order", () => {
    expect(queryFingerprint("t", { query: q, order: "asc" })).not.toBe(queryFingerprint("t", { query: q, order: "desc" }));
    expect(queryFingerprint("t", { conditions: [q.conditions[0], { kind: "time", from: 1_000_001n, to: null }] })).not.toBe(
      queryFingerprint("t", q),
    );
  });

  it("handles bigint values in the query", () => {
    expect(() => queryFingerprint("t", { n: 1n })).not.toThrow();
    expect(queryFingerprint("t", { n: 1n })).not.toBe(queryFingerprint("t", { n: 2n }));
  });

  it("does not let the tenant and query blur into each other", () => {
    // "a\nb" + "c" vs "a" + "b\nc"-like shifts must not collide.
    expect(queryFingerprint("a", "b")).not.toBe(queryFingerprint('a\n"b', ""));
  });
});
