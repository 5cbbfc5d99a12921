// The Authenticator's caches against a fake key store that counts lookups:
// an unknown key id costs one lookup per TTL however often it is tried, the
// memory for unknown ids stays bounded under a flood of random ids, and a key
// created after a failed attempt authenticates at once once this replica
// forgets the id (CreateApiKey does), or within the TTL otherwise.
import { describe, expect, it } from "vitest";
import { Authenticator } from "../../src/auth/authenticator.ts";
import { hashSecret } from "../../src/domain/api-key-secret.ts";
import type { ApiKeyRow, ApiKeyStore } from "../../src/store/api-key-store.ts";

class FakeKeys {
  rows = new Map<string, ApiKeyRow>();
  lookups = 0;
  pending: (() => void)[] = [];
  hold = false;

  async get(id: string): Promise<ApiKeyRow | null> {
    this.lookups++;
    const row = this.rows.get(id) ?? null; // read now, answered later: a slow query
    if (this.hold) await new Promise<void>((r) => this.pending.push(r));
    return row;
  }

  add(id: string, secret: string): void {
    this.rows.set(id, {
      id,
      tenant_id: "t",
      name: "",
      scopes: ["query"],
      secret_hash: hashSecret(secret),
      created_at: new Date(0),
      rotated_at: null,
      revoked_at: null,
      expires_at: null,
    });
  }
}

const TTL = 5_000;
const setup = (opts?: { negativeMaxEntries?: number }) => {
  const keys = new FakeKeys();
  const auth = new Authenticator(keys as unknown as ApiKeyStore, null, TTL, opts);
  return { keys, auth };
};

describe("Authenticator negative cache", () => {
  it("looks an unknown key id up once per TTL", async () => {
    const { keys, auth } = setup();
    const secret = "alk_unknown1_secret";
    for (let i = 0; i < 100; i++) expect(await auth.authenticate(secret, 1_000 + i)).toBeNull();
    expect(keys.lookups).toBe(1);
    // Another secret for the same unknown id is just as unknown.
    expect(await auth.authenticate("alk_unknown1_other", 2_000)).toBeNull();
    expect(keys.lookups).toBe(1);
    expect(await auth.authenticate(secret, 1_000 + TTL)).toBeNull();
    expect(keys.lookups).toBe(2);
  });

  it("lets a key created later in within the TTL, or at once after forget()", async () => {
    const { keys, auth } = setup();
    const secret = "alk_later1_s3cret";
    expect(await auth.authenticate(secret, 0)).toBeNull();
    keys.add("later1", secret);
    // Another replica created it: this one still remembers the miss, for at most the TTL.
    expect(await auth.authenticate(secret, TTL - 1)).toBeNull();
    expect(await auth.authenticate(secret, TTL)).toMatchObject({ kind: "key", keyId: "later1" });

    const secret2 = "alk_later2_s3cret";
    expect(await auth.authenticate(secret2, 0)).toBeNull();
    keys.add("later2", secret2);
    auth.forget("later2"); // what CreateApiKey does on the replica that created it
    expect(await auth.authenticate(secret2, 1)).toMatchObject({ kind: "key", keyId: "later2" });
  });

  it("does not remember a miss whose lookup overlapped a forget()", async () => {
    const { keys, auth } = setup();
    const secret = "alk_racing_s3cret";
    keys.hold = true;
    const first = auth.authenticate(secret, 0);
    await Promise.resolve();
    keys.add("racing", secret);
    auth.forget("racing");
    keys.hold = false;
    for (const r of keys.pending.splice(0)) r();
    expect(await first).toBeNull(); // it read before the row existed
    expect(await auth.authenticate(secret, 1)).toMatchObject({ keyId: "racing" });
  });

  it("answers concurrent attempts with one id from one lookup", async () => {
    const { keys, auth } = setup();
    keys.hold = true;
    const attempts = Array.from({ length: 50 }, () => auth.authenticate("alk_same1_x", 0));
    await new Promise((r) => setTimeout(r, 0));
    for (const r of keys.pending.splice(0)) r();
    keys.hold = false;
    expect(await Promise.all(attempts)).toEqual(Array(50).fill(null));
    expect(keys.lookups).toBe(1);
  });

  it("keeps its memory bounded under a flood of random key ids, evicting the least recently used", async () => {
    const { keys, auth } = setup({ negativeMaxEntries: 1_000 });
    expect(await auth.authenticate("alk_hot1_x", 0)).toBeNull();
    for (let i = 0; i < 20_000; i++) {
      await auth.authenticate(`alk_flood${i}_x`, 1);
      if (i % 100 === 0) await auth.authenticate("alk_hot1_x", 1); // stays recently used
      expect(auth.negativeEntries).toBeLessThanOrEqual(1_000);
    }
    const before = keys.lookups;
    await auth.authenticate("alk_hot1_x", 2);
    expect(keys.lookups).toBe(before);
    await auth.authenticate("alk_flood0_x", 2); // evicted long ago
    expect(keys.lookups).toBe(before + 1);
  });

  it("does not look up (or remember) ids that no key can have", async () => {
    const { keys, auth } = setup();
    for (const secret of [`alk_${"a".repeat(65)}_x`, "alk_bad$id_x", "alk_dot.id_x", "nope", "alk__x"]) {
      expect(await auth.authenticate(secret, 0)).toBeNull();
    }
    expect(keys.lookups).toBe(0);
    expect(auth.negativeEntries).toBe(0);
  });

  it("caches nothing with a TTL of 0", async () => {
    const keys = new FakeKeys();
    const auth = new Authenticator(keys as unknown as ApiKeyStore, null, 0);
    await auth.authenticate("alk_zero1_x", 0);
    await auth.authenticate("alk_zero1_x", 0);
    expect(keys.lookups).toBe(2);
    expect(auth.negativeEntries).toBe(0);
  });
});
