// Turns a bearer secret into a Principal. Verified keys are cached briefly so
// that not every RPC costs a database round trip; rotating or revoking a key
// through this process drops it from the cache at once, other replicas see
// it within `cacheMs`.
//
// Unknown key ids are remembered too (negative cache), for the same `cacheMs`,
// so that repeating a made-up or deleted key does not cost a PostgreSQL query
// per request. The memory is bounded (at most `negativeMaxEntries` ids, least
// recently used evicted first; ids longer than any key's are refused before
// any lookup), so a flood of random ids can cost lookups but not memory.
// Key ids are random and chosen by the server, so nobody can try a key before
// it exists except by guessing; still, CreateApiKey forgets the new id here,
// so a key is usable at once on the replica that created it, and within
// `cacheMs` on the others.
import { timingSafeEqual } from "node:crypto";
import { hashSecret, keyIdOf, secretMatches } from "../domain/api-key-secret.ts";
import type { ApiKeyRow, ApiKeyStore } from "../store/api-key-store.ts";
import { type JwtVerifier, looksLikeJwt } from "./jwt-verifier.ts";
import type { Principal, ScopeName } from "./principal.ts";

type Cached = { principal: Principal | null; secretHash: Buffer; expires: number };

/** Enough for a burst of distinct bad ids between two expiries; about 100 bytes each. */
export const DEFAULT_NEGATIVE_MAX_ENTRIES = 10_000;

/**
 * What a key id can look like: newKeyId() makes 12 characters of [a-z0-9];
 * the wider pattern only keeps garbage (long or odd ids) away from the
 * database and out of the cache.
 */
const PLAUSIBLE_KEY_ID = /^[A-Za-z0-9-]{1,64}$/;

export type AuthenticatorOptions = {
  /** Most unknown key ids remembered at once. */
  negativeMaxEntries?: number;
  /** People's tokens (JWT / OIDC); none: only API keys and the bootstrap key. */
  tokens?: JwtVerifier | null;
};

export class Authenticator {
  private readonly cache = new Map<string, Cached>();
  /** Unknown key id -> expiry; a Map iterates in insertion order, so re-inserting on use makes it an LRU. */
  private readonly unknown = new Map<string, number>();
  /** One lookup per key id at a time: a burst of the same id costs one query. */
  private readonly inflight = new Map<string, Promise<ApiKeyRow | null>>();
  /** Bumped by forget(): a lookup that started before must not cache what it read. */
  private epoch = 0;
  private readonly bootstrapHash: Buffer | null;
  private readonly keys: ApiKeyStore;
  private readonly cacheMs: number;
  private readonly negativeMax: number;
  private readonly tokens: JwtVerifier | null;

  constructor(keys: ApiKeyStore, bootstrapKey: string | null, cacheMs: number, opts: AuthenticatorOptions = {}) {
    this.keys = keys;
    this.cacheMs = cacheMs;
    this.negativeMax = opts.negativeMaxEntries ?? DEFAULT_NEGATIVE_MAX_ENTRIES;
    this.bootstrapHash = bootstrapKey ? hashSecret(bootstrapKey) : null;
    this.tokens = opts.tokens ?? null;
  }

  /** How many unknown key ids are remembered now. */
  get negativeEntries(): number {
    return this.unknown.size;
  }

  /**
   * The caller behind `secret`, or null if the secret is not valid now. A
   * JWT that is not valid throws TokenRefusedError, saying why.
   */
  async authenticate(secret: string, now = Date.now()): Promise<Principal | null> {
    if (this.bootstrapHash && timingSafeEqual(hashSecret(secret), this.bootstrapHash)) return { kind: "operator" };
    if (this.tokens && looksLikeJwt(secret)) return this.tokens.verify(secret);
    const keyId = keyIdOf(secret);
    if (!keyId || !PLAUSIBLE_KEY_ID.test(keyId)) return null;
    const cached = this.cache.get(keyId);
    if (cached && cached.expires > now) return secretMatches(secret, cached.secretHash) ? cached.principal : null;
    if (this.knownUnknown(keyId, now)) return null;
    const epoch = this.epoch;
    const row = await this.lookup(keyId);
    const fresh = epoch === this.epoch;
    if (!row) {
      if (fresh) this.rememberUnknown(keyId, now);
      return null;
    }
    const live = row.revoked_at === null && (row.expires_at === null || row.expires_at.getTime() > now);
    const principal: Principal | null = live
      ? { kind: "key", keyId: row.id, tenantId: row.tenant_id, scopes: new Set(row.scopes as ScopeName[]) }
      : null;
    // An expiring key must not outlive its expiry in the cache.
    const expires = Math.min(now + this.cacheMs, row.expires_at?.getTime() ?? Infinity);
    if (fresh) this.cache.set(keyId, { principal, secretHash: row.secret_hash, expires });
    return secretMatches(secret, row.secret_hash) ? principal : null;
  }

  /** Drops what this replica knows about the key id (created, rotated or revoked here). */
  forget(keyId: string): void {
    this.epoch++;
    this.cache.delete(keyId);
    this.unknown.delete(keyId);
    this.inflight.delete(keyId);
  }

  private lookup(keyId: string): Promise<ApiKeyRow | null> {
    let p = this.inflight.get(keyId);
    if (!p) {
      p = this.keys.get(keyId).finally(() => {
        if (this.inflight.get(keyId) === p) this.inflight.delete(keyId);
      });
      this.inflight.set(keyId, p);
    }
    return p;
  }

  private knownUnknown(keyId: string, now: number): boolean {
    const expires = this.unknown.get(keyId);
    if (expires === undefined) return false;
    this.unknown.delete(keyId);
    if (expires <= now) return false;
    this.unknown.set(keyId, expires);
    return true;
  }

  private rememberUnknown(keyId: string, now: number): void {
    if (this.cacheMs <= 0 || this.negativeMax <= 0) return;
    this.unknown.delete(keyId);
    while (this.unknown.size >= this.negativeMax) this.unknown.delete(this.unknown.keys().next().value!);
    this.unknown.set(keyId, now + this.cacheMs);
  }
}
