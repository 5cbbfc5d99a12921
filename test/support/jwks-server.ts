// An OIDC provider's key endpoint of our own, on loopback: keys made by
// jose, published as a JWKS, and tokens signed with them. Keys can be added
// (rotation) and removed while the service runs.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";

export type KeyAlg = "RS256" | "ES256";

type KeyEntry = { kid: string; alg: KeyAlg; privateKey: CryptoKey; jwk: JWK };

export type TokenOptions = {
  /** Seconds from now; negative: already expired. Default 300. */
  expiresIn?: number;
  /** Seconds from now the token becomes valid (nbf). */
  notBefore?: number;
  issuer?: string;
  audience?: string;
  /** Overrides the header's kid (e.g. to claim another key's id). */
  kid?: string;
};

export class JwksServer {
  readonly issuer: string;
  readonly audience: string;
  private readonly keys = new Map<string, KeyEntry>();
  private server: http.Server | null = null;
  /** How many times the JWKS was fetched. */
  fetches = 0;
  url = "";

  constructor(issuer = "https://idp.test", audience = "auditlog-test") {
    this.issuer = issuer;
    this.audience = audience;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      if (req.url !== "/jwks.json") {
        res.writeHead(404).end();
        return;
      }
      this.fetches++;
      const body = JSON.stringify({ keys: [...this.keys.values()].map((k) => k.jwk) });
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/jwks.json`;
    return this;
  }

  /** A new key pair, published at once unless `publish` is false; returns its kid. */
  async addKey(alg: KeyAlg, publish = true): Promise<string> {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `${alg.toLowerCase()}-${randomBytes(4).toString("hex")}`;
    const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
    const entry = { kid, alg, privateKey, jwk };
    if (publish) this.keys.set(kid, entry);
    else this.unpublished.set(kid, entry);
    return kid;
  }

  /** Keys made but not (yet) in the JWKS. */
  private readonly unpublished = new Map<string, KeyEntry>();

  publish(kid: string): void {
    const k = this.unpublished.get(kid);
    if (!k) throw new Error(`no unpublished key ${kid}`);
    this.unpublished.delete(kid);
    this.keys.set(kid, k);
  }

  /** A token signed with key `kid` (published or not). */
  sign(kid: string, claims: JWTPayload, opts: TokenOptions = {}): Promise<string> {
    const k = this.keys.get(kid) ?? this.unpublished.get(kid);
    if (!k) throw new Error(`no key ${kid}`);
    return signWith(k.privateKey, k.alg, opts.kid ?? kid, claims, { issuer: this.issuer, audience: this.audience, ...opts });
  }

  async close(): Promise<void> {
    if (this.server) await new Promise((r) => this.server!.close(r));
  }
}

/** A token signed with `key` (an HMAC secret's bytes or a private key). */
export function signWith(
  key: CryptoKey | Uint8Array,
  alg: string,
  kid: string | undefined,
  claims: JWTPayload,
  opts: TokenOptions & { issuer: string; audience: string },
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(claims)
    .setProtectedHeader(kid ? { alg, kid, typ: "JWT" } : { alg, typ: "JWT" })
    .setIssuer(opts.issuer)
    .setAudience(opts.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.expiresIn ?? 300));
  if (opts.notBefore !== undefined) jwt.setNotBefore(now + opts.notBefore);
  return jwt.sign(key);
}

/** An unsigned token (`alg: none`) with the given claims: what no server may accept. */
export function unsignedToken(claims: JWTPayload): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
}

/**
 * Tokens that every server configured for `jwks` (and HS256 with `hsSecret`,
 * algorithms HS256, RS256 and ES256 only) must refuse as UNAUTHENTICATED, by
 * what is wrong with them. Each carries `claims`; "edited claims" is a good
 * token whose payload was replaced by `claims` plus `escalate` (a wider role,
 * another tenant) under the original signature. One list for every suite
 * that attacks tokens (people-tokens, attack-suite).
 */
export async function refusedTokens(
  jwks: JwksServer,
  kid: string,
  hsSecret: Uint8Array,
  claims: JWTPayload,
  escalate: JWTPayload,
): Promise<Record<string, string>> {
  const registered = { iss: jwks.issuer, aud: jwks.audience, exp: Math.floor(Date.now() / 1000) + 300 };
  const stranger = await jwks.addKey("RS256", false);
  const [header, , signature] = (await jwks.sign(kid, claims)).split(".");
  const edited = Buffer.from(JSON.stringify({ ...claims, ...escalate, ...registered })).toString("base64url");
  const { sub: _sub, ...noSubject } = claims;
  const ours = { issuer: jwks.issuer, audience: jwks.audience };
  return {
    // Signed by a key that is not published, claiming the published key's id.
    "wrong signature": await jwks.sign(stranger, claims, { kid }),
    "edited claims": `${header}.${edited}.${signature}`,
    "alg none": unsignedToken({ ...claims, ...registered }),
    "HS256 signed with another secret": await signWith(new TextEncoder().encode("x".repeat(64)), "HS256", undefined, claims, ours),
    expired: await jwks.sign(kid, claims, { expiresIn: -60 }),
    "not yet valid": await jwks.sign(kid, claims, { notBefore: 120 }),
    "wrong issuer": await jwks.sign(kid, claims, { issuer: "https://evil.test" }),
    "wrong audience": await jwks.sign(kid, claims, { audience: "another-app" }),
    "no subject": await jwks.sign(kid, noSubject),
    "HS384 (not configured)": await signWith(hsSecret, "HS384", undefined, claims, ours),
  };
}
