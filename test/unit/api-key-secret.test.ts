import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashSecret, keyIdOf, newKeyId, newSecret, secretMatches } from "../../src/domain/api-key-secret.ts";

describe("newKeyId", () => {
  it("is 12 lowercase characters without separators", () => {
    for (let i = 0; i < 200; i++) {
      const id = newKeyId();
      expect(id).toMatch(/^[a-z0-9]{12}$/);
    }
  });

  it("differs each time", () => {
    expect(new Set(Array.from({ length: 1000 }, newKeyId)).size).toBe(1000);
  });
});

describe("newSecret", () => {
  it("is alk_<key id>_<43 base64url characters>", () => {
    const secret = newSecret("abc123");
    expect(secret).toMatch(/^alk_abc123_[A-Za-z0-9_-]{43}$/);
    expect(newSecret("abc123")).not.toBe(secret);
  });
});

describe("keyIdOf", () => {
  it("finds the key id in our secrets, even when the random part contains '_'", () => {
    for (let i = 0; i < 500; i++) {
      const id = newKeyId();
      expect(keyIdOf(newSecret(id))).toBe(id);
    }
    expect(keyIdOf("alk_k1_abc_def")).toBe("k1");
  });

  it.each([
    ["empty", ""],
    ["no prefix", "abc_def"],
    ["other prefix", "sk_live_abc"],
    ["upper-case prefix", "ALK_k1_abc"],
    ["prefix only", "alk_"],
    ["no separator after the id", "alk_k1abc"],
    ["empty key id", "alk__abc"],
    ["leading space", " alk_k1_abc"],
  ])("rejects %s", (_name, secret) => {
    expect(keyIdOf(secret)).toBeNull();
  });
});

describe("hashSecret and secretMatches", () => {
  const secret = newSecret("k1");
  const stored = hashSecret(secret);

  it("hashes with SHA-256 over the UTF-8 secret", () => {
    expect(stored).toEqual(createHash("sha256").update(secret, "utf8").digest());
    expect(stored.length).toBe(32);
  });

  it("matches the right secret", () => {
    expect(secretMatches(secret, stored)).toBe(true);
  });

  it("does not match another secret, a changed character, or a prefix", () => {
    expect(secretMatches(newSecret("k1"), stored)).toBe(false);
    const flipped = secret.slice(0, -1) + (secret.endsWith("A") ? "B" : "A");
    expect(secretMatches(flipped, stored)).toBe(false);
    expect(secretMatches(secret.slice(0, -1), stored)).toBe(false);
    expect(secretMatches("", stored)).toBe(false);
  });

  it("returns false rather than throwing for a stored hash of the wrong length", () => {
    expect(secretMatches(secret, Buffer.alloc(0))).toBe(false);
    expect(secretMatches(secret, stored.subarray(0, 16))).toBe(false);
    expect(secretMatches(secret, Buffer.concat([stored, Buffer.from([0])]))).toBe(false);
  });
});
