// People's tokens: a JWT signed with a shared HS256 secret, or by an OIDC
// provider whose public keys are published at a JWKS URL. Checked: the
// signature with an algorithm from the configured list (never `none`, never
// an HMAC algorithm against a public key), issuer, audience, expiry and
// not-before with the configured clock skew. The claims then map to a
// subject, a role and tenants (token-claims.ts).
//
// The JWKS is fetched on first use and cached (`createRemoteJWKSet`); a
// token whose key id is not in the cached set makes it fetch again, at most
// once per `jwksCooldownMs`, so a provider's key rotation is picked up at
// once while a flood of made-up key ids cannot hammer the provider.
import { Code, ConnectError } from "@connectrpc/connect";
import { createRemoteJWKSet, errors, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { Principal } from "./principal.ts";
import { type ClaimMapping, identityFromClaims } from "./token-claims.ts";

export type JwtSettings = {
  /** HS256 shared secret; null: no HMAC tokens. */
  hs256Secret: string | null;
  /** The OIDC provider's JWKS; null: no public-key tokens. */
  jwksUrl: string | null;
  issuer: string;
  audience: readonly string[];
  clockSkewS: number;
  /** Accepted `alg` values; HS* need the secret, the others the JWKS. */
  algorithms: readonly string[];
  /** Least time between two JWKS fetches caused by unknown key ids. */
  jwksCooldownMs: number;
  claims: ClaimMapping;
};

/** A token that is not (or no longer) valid: UNAUTHENTICATED, with the reason. */
export class TokenRefusedError extends Error {}

/** Three base64url parts: a JWS in compact form. API keys (`alk_...`) never contain dots. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

export function looksLikeJwt(token: string): boolean {
  return COMPACT_JWS.test(token);
}

/** jose errors that say the token is bad; any other failure is the key source's (JWKS unreachable or broken). */
const TOKEN_FAULTS = new Set([
  "ERR_JWT_CLAIM_VALIDATION_FAILED",
  "ERR_JWT_EXPIRED",
  "ERR_JOSE_ALG_NOT_ALLOWED",
  "ERR_JOSE_NOT_SUPPORTED",
  "ERR_JWS_INVALID",
  "ERR_JWT_INVALID",
  "ERR_JWK_INVALID",
  "ERR_JWKS_NO_MATCHING_KEY",
  "ERR_JWKS_MULTIPLE_MATCHING_KEYS",
  "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
]);

export class JwtVerifier {
  private readonly settings: JwtSettings;
  private readonly getKey: JWTVerifyGetKey;

  constructor(settings: JwtSettings) {
    this.settings = settings;
    const secret = settings.hs256Secret ? new TextEncoder().encode(settings.hs256Secret) : null;
    const jwks = settings.jwksUrl ? createRemoteJWKSet(new URL(settings.jwksUrl), { cooldownDuration: settings.jwksCooldownMs }) : null;
    // The key follows from the algorithm, so an HMAC token is never checked
    // against a public key (the classic algorithm confusion) nor the reverse.
    this.getKey = (header, token) => {
      if (header.alg?.startsWith("HS")) {
        if (!secret) throw new errors.JOSEAlgNotAllowed("HMAC tokens are not accepted here");
        return secret;
      }
      if (!jwks) throw new errors.JOSEAlgNotAllowed("public-key tokens are not accepted here");
      return jwks(header, token);
    };
  }

  /** The principal behind a compact JWT; TokenRefusedError when it is not valid now. */
  async verify(token: string): Promise<Principal> {
    const s = this.settings;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.getKey, {
        issuer: s.issuer,
        audience: [...s.audience],
        clockTolerance: s.clockSkewS,
        algorithms: [...s.algorithms],
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      if (err instanceof errors.JOSEError && TOKEN_FAULTS.has(err.code)) throw new TokenRefusedError(err.message);
      // Not the token's fault: the caller may retry (errors.ts would say INTERNAL for an unknown error).
      throw new ConnectError(
        "the identity provider's keys (JWKS) cannot be fetched now; retry",
        Code.Unavailable,
        undefined,
        undefined,
        err,
      );
    }
    const id = identityFromClaims(payload, s.claims);
    if (!id) throw new TokenRefusedError(`the token has no "${s.claims.subjectClaim}" claim (a non-empty string)`);
    return { kind: "token", subject: id.subject, role: id.role, tenants: id.tenants, tenantId: null };
  }
}
