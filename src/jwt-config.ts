// The AUDITLOG_JWT_* variables (people's tokens, docs/ACCESS.md), read by
// loadConfig (config.ts). Kept apart because the claim mapping has a grammar
// of its own. Every bad value is reported by variable name.
import type { JwtSettings } from "./auth/jwt-verifier.ts";
import type { Role } from "./auth/principal.ts";
import { type ClaimMapping, DEFAULT_CLAIM_MAPPING } from "./auth/token-claims.ts";
import { wholeNumber } from "./env-number.ts";

type Env = Record<string, string | undefined>;

const HMAC_ALGORITHMS = ["HS256"];
const PUBLIC_KEY_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
const ROLES: readonly Role[] = ["admin", "auditor", "user"];

const list = (raw: string) =>
  raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** `value=role,value=role`: which role claim values mean which role. */
function roleMap(raw: string, errors: string[]): Record<string, Role> {
  const map: Record<string, Role> = {};
  for (const pair of list(raw)) {
    const eq = pair.lastIndexOf("=");
    const value = pair.slice(0, eq).trim();
    const role = pair.slice(eq + 1).trim() as Role;
    if (eq <= 0 || !ROLES.includes(role)) {
      errors.push(`AUDITLOG_JWT_ROLE_MAP: ${JSON.stringify(pair)} is not <claim value>=<admin|auditor|user>`);
      continue;
    }
    map[value] = role;
  }
  return map;
}

/** Token settings, or null when neither a secret nor a JWKS URL is set (API keys only). */
export function jwtConfig(env: Env, errors: string[]): JwtSettings | null {
  const hs256Secret = env.AUDITLOG_JWT_HS256_SECRET || null;
  const jwksUrl = env.AUDITLOG_JWT_JWKS_URL || null;
  if (!hs256Secret && !jwksUrl) return null;
  if (hs256Secret !== null && Buffer.byteLength(hs256Secret) < 32) {
    errors.push("AUDITLOG_JWT_HS256_SECRET: must be at least 32 bytes (HS256 needs a 256-bit key; e.g. `openssl rand -hex 32`)");
  }
  if (jwksUrl !== null && !URL.canParse(jwksUrl)) errors.push("AUDITLOG_JWT_JWKS_URL: must be an http:// or https:// URL");
  else if (jwksUrl !== null && !/^https?:$/.test(new URL(jwksUrl).protocol))
    errors.push("AUDITLOG_JWT_JWKS_URL: must be an http:// or https:// URL");
  // Without both, a token from any issuer's other application would pass.
  const issuer = env.AUDITLOG_JWT_ISSUER || "";
  if (!issuer)
    errors.push("AUDITLOG_JWT_ISSUER: required with AUDITLOG_JWT_HS256_SECRET or AUDITLOG_JWT_JWKS_URL (the `iss` tokens must carry)");
  const audience = list(env.AUDITLOG_JWT_AUDIENCE ?? "");
  if (!audience.length)
    errors.push("AUDITLOG_JWT_AUDIENCE: required with AUDITLOG_JWT_HS256_SECRET or AUDITLOG_JWT_JWKS_URL (an `aud` tokens must carry)");
  const clockSkewS = wholeNumber(env, "AUDITLOG_JWT_CLOCK_SKEW_S", 30, 0, 300, errors);
  const jwksCooldownMs = wholeNumber(env, "AUDITLOG_JWT_JWKS_COOLDOWN_MS", 30_000, 0, 3_600_000, errors);

  const usable = [...(hs256Secret ? HMAC_ALGORITHMS : []), ...(jwksUrl ? PUBLIC_KEY_ALGORITHMS : [])];
  const algorithms = env.AUDITLOG_JWT_ALGORITHMS
    ? list(env.AUDITLOG_JWT_ALGORITHMS)
    : [...(hs256Secret ? ["HS256"] : []), ...(jwksUrl ? ["RS256", "ES256"] : [])];
  for (const a of algorithms) {
    if (!usable.includes(a)) {
      errors.push(
        `AUDITLOG_JWT_ALGORITHMS: ${JSON.stringify(a)} is not one of ${usable.join(", ")} (HS256 needs the secret, the others the JWKS URL)`,
      );
    }
  }
  if (!algorithms.length) errors.push("AUDITLOG_JWT_ALGORITHMS: name at least one algorithm");

  const claims: ClaimMapping = {
    tenantClaims: env.AUDITLOG_JWT_TENANTS_CLAIM ? list(env.AUDITLOG_JWT_TENANTS_CLAIM) : DEFAULT_CLAIM_MAPPING.tenantClaims,
    roleClaim: env.AUDITLOG_JWT_ROLE_CLAIM || DEFAULT_CLAIM_MAPPING.roleClaim,
    roleMap: env.AUDITLOG_JWT_ROLE_MAP ? roleMap(env.AUDITLOG_JWT_ROLE_MAP, errors) : DEFAULT_CLAIM_MAPPING.roleMap,
    subjectClaim: env.AUDITLOG_JWT_SUBJECT_CLAIM || DEFAULT_CLAIM_MAPPING.subjectClaim,
  };
  return { hs256Secret, jwksUrl, issuer, audience, clockSkewS, algorithms, jwksCooldownMs, claims };
}
