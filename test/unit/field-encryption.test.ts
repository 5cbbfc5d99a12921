import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  decryptPart,
  decryptRecord,
  encryptPart,
  encryptRecord,
  envelopeKeyIds,
  isEnvelope,
  newDataKey,
  unwrapDataKey,
  wrapDataKey,
} from "../../src/domain/field-encryption.ts";
import { recordFromEvent } from "../../src/domain/event-record.ts";
import { maySeeProtectedContent } from "../../src/services/data-protection.ts";
import { minimalEvent } from "./fixtures.ts";

describe("field encryption", () => {
  const key = newDataKey();

  it("round-trips a part and shows nothing of it in the envelope", () => {
    const env = encryptPart(key, "acme", "changes.after", { salary: "91234" });
    expect(isEnvelope(env)).toBe(true);
    expect(JSON.stringify(env)).not.toContain("91234");
    expect(decryptPart(key.key, "acme", "changes.after", env)).toEqual({ salary: "91234" });
  });

  it("does not decrypt under another tenant, another path or a tampered ciphertext", () => {
    const env = encryptPart(key, "acme", "changes.after", { a: 1 });
    expect(() => decryptPart(key.key, "other", "changes.after", env)).toThrow();
    expect(() => decryptPart(key.key, "acme", "changes.before", env)).toThrow();
    const inner = (env as { $encrypted: { data: string } }).$encrypted;
    const data = Buffer.from(inner.data, "base64");
    data[0]! ^= 1;
    expect(() => decryptPart(key.key, "acme", "changes.after", { $encrypted: { ...inner, data: data.toString("base64") } })).toThrow();
  });

  it("wraps data keys under a KEK, bound to tenant and key id", () => {
    const kek = randomBytes(32);
    const wrapped = wrapDataKey(kek, key, "acme");
    expect(unwrapDataKey(kek, wrapped, "acme", key.keyId).key.equals(key.key)).toBe(true);
    expect(() => unwrapDataKey(kek, wrapped, "other", key.keyId)).toThrow();
    expect(() => unwrapDataKey(randomBytes(32), wrapped, "acme", key.keyId)).toThrow();
  });

  it("encrypts both sides of changes of a record and names the key", () => {
    const r = recordFromEvent(minimalEvent({ changes: { before: { a: 1 }, after: { a: 2 } } }));
    const enc = encryptRecord(r, key, "acme");
    expect(envelopeKeyIds(enc)).toEqual([key.keyId, key.keyId]);
    expect(decryptRecord(enc, () => key.key, "acme")).toEqual(r);
    expect(encryptRecord(recordFromEvent(minimalEvent()), key, "acme").changes).toBeNull();
  });

  it("lets query keys, admins and auditors see clear text, and nobody else", () => {
    const scopes = (s: ("ingest" | "query" | "admin")[]) => new Set(s);
    expect(maySeeProtectedContent({ kind: "key", keyId: "k", tenantId: "t", scopes: scopes(["query"]) })).toBe(true);
    expect(maySeeProtectedContent({ kind: "key", keyId: "k", tenantId: "t", scopes: scopes(["ingest", "admin"]) })).toBe(false);
    const token = (role: "admin" | "auditor" | "user" | null) => ({
      kind: "token" as const,
      subject: "s",
      role,
      tenants: ["t"],
      tenantId: "t",
    });
    expect(maySeeProtectedContent(token("admin"))).toBe(true);
    expect(maySeeProtectedContent(token("auditor"))).toBe(true);
    expect(maySeeProtectedContent(token("user"))).toBe(false);
    expect(maySeeProtectedContent(token(null))).toBe(false);
    expect(maySeeProtectedContent({ kind: "operator" })).toBe(false);
  });
});
