import { describe, expect, it } from "vitest";
import { checkMaskingRules, compileMasking, DEFAULT_MASKING_RULES, luhnValid, type MaskingRules } from "../../src/domain/masking.ts";
import { recordFromEvent } from "../../src/domain/event-record.ts";
import { contentHash } from "../../src/domain/hash-chain.ts";
import { fullEvent, minimalEvent } from "./fixtures.ts";

const record = (init: Parameters<typeof minimalEvent>[0]) => recordFromEvent(minimalEvent(init));
const rules = (over: Partial<MaskingRules>): MaskingRules => ({ keys: [], patterns: [], paths: [], ...over });

describe("masking at ingest", () => {
  it("masks credentials under their usual names by default, at any depth and inside arrays", () => {
    const mask = compileMasking(DEFAULT_MASKING_RULES);
    const r = mask(
      record({
        metadata: {
          password: "hunter2",
          user: { name: "ada", apiKey: "sk_live_1", "X-Api-Key": "k" },
          headers: [{ Authorization: "Bearer abc", Cookie: { session: "s" } }],
          refresh_token: "rt",
          plan: "pro",
        },
      }),
    );
    expect(r.metadata).toEqual({
      password: "[masked:password]",
      user: { name: "ada", apiKey: "[masked:apikey]", "X-Api-Key": "[masked:apikey]" },
      headers: [{ Authorization: "[masked:authorization]", Cookie: "[masked:cookie]" }],
      refresh_token: "[masked:token]",
      plan: "pro",
    });
  });

  it("masks in changes.before and changes.after and leaves typed fields as sent", () => {
    const mask = compileMasking(DEFAULT_MASKING_RULES);
    const r = mask(
      record({ actor: { id: "password" }, changes: { before: { password: "old" }, after: { password: "new", email: "a@b.example" } } }),
    );
    expect(r.changes).toEqual({
      before: { password: "[masked:password]" },
      after: { password: "[masked:password]", email: "a@b.example" },
    });
    expect(r.actor.id).toBe("password");
  });

  it("masks Luhn-valid card numbers in strings and the message, keeping the last four digits", () => {
    const mask = compileMasking(DEFAULT_MASKING_RULES);
    const r = mask(
      record({
        message: "charged 4111 1111 1111 1111 and 5500-0000-0000-0004; order 4111111111111112 stays",
        metadata: { note: "card=4242424242424242", n: 4111111111111111 },
      }),
    );
    expect(r.message).toBe("charged [masked:card ****1111] and [masked:card ****0004]; order 4111111111111112 stays");
    expect(r.metadata).toEqual({ note: "card=[masked:card ****4242]", n: 4111111111111111 });
  });

  it("masks the shortest card number and address it knows (the length below which strings are skipped)", () => {
    const mask = compileMasking(rules({ patterns: ["card", "email"] }));
    const r = mask(record({ message: "4222222222222", metadata: { to: "a@b.cd", short: "a@b.c", digits: "422222222222" } }));
    expect(r.message).toBe("[masked:card ****2222]");
    expect(r.metadata).toEqual({ to: "[masked:email]", short: "a@b.c", digits: "422222222222" });
  });

  it("masks e-mail addresses only when the tenant asks", () => {
    const input = record({ message: "invited ada@example.com", metadata: { to: "bob@mail.example.org" } });
    expect(compileMasking(DEFAULT_MASKING_RULES)(input).message).toBe("invited ada@example.com");
    const r = compileMasking(rules({ patterns: ["email"] }))(input);
    expect(r.message).toBe("invited [masked:email]");
    expect(r.metadata).toEqual({ to: "[masked:email]" });
  });

  it("masks explicit paths, changes.* on both sides, and ignores paths that are absent", () => {
    const mask = compileMasking(rules({ paths: ["metadata.customer.ssn", "changes.*.iban", "metadata.missing.x"] }));
    const r = mask(
      record({
        metadata: { customer: { ssn: "123-45-6789", name: "Ada" }, ssn: "top-level stays" },
        changes: { before: { iban: "DE1" }, after: { iban: "DE2", bic: "X" } },
      }),
    );
    expect(r.metadata).toEqual({ customer: { ssn: "[masked:metadata.customer.ssn]", name: "Ada" }, ssn: "top-level stays" });
    expect(r.changes).toEqual({ before: { iban: "[masked:changes.*.iban]" }, after: { iban: "[masked:changes.*.iban]", bic: "X" } });
  });

  it("is deterministic (a retry hashes alike) and does not touch the input", () => {
    const input = recordFromEvent(fullEvent({ metadata: { password: "p" } }));
    const copy = structuredClone(input);
    const mask = compileMasking(DEFAULT_MASKING_RULES);
    expect(contentHash(mask(input))).toBe(contentHash(mask(input)));
    expect(input).toEqual(copy);
    expect(contentHash(mask(input))).not.toBe(contentHash(input));
  });

  it("copies only what it masks: an event with nothing to mask is returned as it is", () => {
    const mask = compileMasking(DEFAULT_MASKING_RULES);
    const clean = recordFromEvent(fullEvent());
    expect(mask(clean)).toBe(clean);
    const input = record({ metadata: { user: { name: "ada", token: "t" }, plan: { tier: "pro" }, tags: ["a", { b: 1 }] } });
    const copy = structuredClone(input);
    const r = mask(input);
    expect(r.metadata).toEqual({ user: { name: "ada", token: "[masked:token]" }, plan: { tier: "pro" }, tags: ["a", { b: 1 }] });
    expect(input).toEqual(copy);
    expect(r.metadata!["plan"]).toBe(input.metadata!["plan"]);
    expect(r.metadata!["user"]).not.toBe(input.metadata!["user"]);
    // An array is copied once something in it is masked, from that element on as masked.
    const cards = record({ metadata: { list: ["x", "4111 1111 1111 1111", { k: 1 }] } });
    const masked = compileMasking(rules({ patterns: ["card"] }))(cards);
    expect(masked.metadata!["list"]).toEqual(["x", "[masked:card ****1111]", { k: 1 }]);
    expect((cards.metadata!["list"] as string[])[1]).toBe("4111 1111 1111 1111");
  });

  it("masks paths on a copy, never in the caller's objects", () => {
    const input = record({ metadata: { customer: { ssn: "1", name: "Ada" } }, changes: { after: { iban: "DE2" } } });
    const copy = structuredClone(input);
    const r = compileMasking(rules({ paths: ["metadata.customer.ssn", "changes.after.iban"] }))(input);
    expect(r.metadata).toEqual({ customer: { ssn: "[masked:metadata.customer.ssn]", name: "Ada" } });
    expect(r.changes).toEqual({ before: null, after: { iban: "[masked:changes.after.iban]" } });
    expect(input).toEqual(copy);
  });

  it("checks the Luhn sum", () => {
    expect(luhnValid("4111111111111111")).toBe(true);
    expect(luhnValid("4111111111111112")).toBe(false);
    expect(luhnValid("79927398713")).toBe(true);
  });

  it("refuses bad rules by field", () => {
    expect(checkMaskingRules(DEFAULT_MASKING_RULES)).toEqual([]);
    expect(
      checkMaskingRules({ keys: ["ok", "--"], patterns: ["card", "ssn" as never], paths: ["metadata.a", "actor.id", "metadata"] }),
    ).toEqual([
      { field: "keys[1]", reason: expect.stringMatching(/key name/) },
      { field: "patterns[1]", reason: "one of card, email" },
      { field: "paths[1]", reason: expect.stringMatching(/dotted path/) },
      { field: "paths[2]", reason: expect.stringMatching(/dotted path/) },
    ]);
  });
});
