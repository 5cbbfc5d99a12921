// API key secrets: `alk_<key id>_<random>`. The key id is public and used
// for lookup; only a SHA-256 of the whole secret is stored (the secret has
// 256 random bits, so a slow password hash would add nothing).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const PREFIX = "alk_";

export function newKeyId(): string {
  return randomBytes(9).toString("base64url").replace(/[-_]/g, "x").toLowerCase();
}

export function newSecret(keyId: string): string {
  return `${PREFIX}${keyId}_${randomBytes(32).toString("base64url")}`;
}

export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/** The key id inside a secret, or null if it is not shaped like one of ours. */
export function keyIdOf(secret: string): string | null {
  if (!secret.startsWith(PREFIX)) return null;
  const rest = secret.slice(PREFIX.length);
  const sep = rest.indexOf("_");
  if (sep <= 0) return null;
  return rest.slice(0, sep);
}

export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const h = hashSecret(secret);
  return h.length === storedHash.length && timingSafeEqual(h, storedHash);
}
