// Turns a bearer secret into a Principal. Verified keys are cached briefly so
// that not every RPC costs a database round trip; rotating or revoking a key
// through this process drops it from the cache at once, other replicas see
// it within `cacheMs`.
import { timingSafeEqual } from "node:crypto";
import { hashSecret, keyIdOf, secretMatches } from "../domain/api-key-secret.ts";
import type { ApiKeyStore } from "../store/api-key-store.ts";
import type { Principal, ScopeName } from "./principal.ts";

type Cached = { principal: Principal | null; secretHash: Buffer; expires: number };

export class Authenticator {
  private readonly cache = new Map<string, Cached>();
  private readonly bootstrapHash: Buffer | null;
  private readonly keys: ApiKeyStore;
  private readonly cacheMs: number;

  constructor(keys: ApiKeyStore, bootstrapKey: string | null, cacheMs: number) {
    this.keys = keys;
    this.cacheMs = cacheMs;
    this.bootstrapHash = bootstrapKey ? hashSecret(bootstrapKey) : null;
  }

  /** The caller behind `secret`, or null if the secret is not valid now. */
  async authenticate(secret: string, now = Date.now()): Promise<Principal | null> {
    if (this.bootstrapHash && timingSafeEqual(hashSecret(secret), this.bootstrapHash)) return { kind: "operator" };
    const keyId = keyIdOf(secret);
    if (!keyId) return null;
    const cached = this.cache.get(keyId);
    if (cached && cached.expires > now) return secretMatches(secret, cached.secretHash) ? cached.principal : null;
    const row = await this.keys.get(keyId);
    if (!row) return null;
    const live = row.revoked_at === null && (row.expires_at === null || row.expires_at.getTime() > now);
    const principal: Principal | null = live
      ? { kind: "key", keyId: row.id, tenantId: row.tenant_id, scopes: new Set(row.scopes as ScopeName[]) }
      : null;
    // An expiring key must not outlive its expiry in the cache.
    const expires = Math.min(now + this.cacheMs, row.expires_at?.getTime() ?? Infinity);
    this.cache.set(keyId, { principal, secretHash: row.secret_hash, expires });
    return secretMatches(secret, row.secret_hash) ? principal : null;
  }

  forget(keyId: string): void {
    this.cache.delete(keyId);
  }
}
