// AUDITLOG_JWT_* (src/jwt-config.ts, through loadConfig): defaults, the
// claim mapping's grammar, and every bad value named.
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";

const SECRET = "s".repeat(32);
const BASE = { AUDITLOG_JWT_ISSUER: "https://idp", AUDITLOG_JWT_AUDIENCE: "auditlog" };

describe("JWT configuration", () => {
  it("is off without a secret or a JWKS URL", () => {
    expect(loadConfig({}).jwt).toBeNull();
  });

  it("has defaults for the algorithms, skew, cooldown and claims", () => {
    expect(loadConfig({ ...BASE, AUDITLOG_JWT_HS256_SECRET: SECRET }).jwt).toEqual({
      hs256Secret: SECRET,
      jwksUrl: null,
      issuer: "https://idp",
      audience: ["auditlog"],
      clockSkewS: 30,
      algorithms: ["HS256"],
      jwksCooldownMs: 30_000,
      claims: {
        tenantClaims: ["tenants", "tenant_id"],
        roleClaim: "role",
        roleMap: { admin: "admin", auditor: "auditor", user: "user" },
        subjectClaim: "sub",
      },
    });
    expect(loadConfig({ ...BASE, AUDITLOG_JWT_JWKS_URL: "https://idp/jwks" }).jwt?.algorithms).toEqual(["RS256", "ES256"]);
  });

  it("reads the claim mapping", () => {
    const jwt = loadConfig({
      ...BASE,
      AUDITLOG_JWT_JWKS_URL: "https://idp/jwks",
      AUDITLOG_JWT_AUDIENCE: "a, b",
      AUDITLOG_JWT_TENANTS_CLAIM: "https://example.com/tenants",
      AUDITLOG_JWT_ROLE_CLAIM: "realm_access.roles",
      AUDITLOG_JWT_ROLE_MAP: "auditlog-admin=admin, auditlog-reader=auditor",
      AUDITLOG_JWT_SUBJECT_CLAIM: "email",
      AUDITLOG_JWT_CLOCK_SKEW_S: "0",
    }).jwt!;
    expect(jwt.audience).toEqual(["a", "b"]);
    expect(jwt.clockSkewS).toBe(0);
    expect(jwt.claims).toEqual({
      tenantClaims: ["https://example.com/tenants"],
      roleClaim: "realm_access.roles",
      roleMap: { "auditlog-admin": "admin", "auditlog-reader": "auditor" },
      subjectClaim: "email",
    });
  });

  it("names every bad value", () => {
    const env = {
      AUDITLOG_JWT_HS256_SECRET: "short",
      AUDITLOG_JWT_JWKS_URL: "ftp://idp/jwks",
      AUDITLOG_JWT_CLOCK_SKEW_S: "3600",
      AUDITLOG_JWT_ALGORITHMS: "none,HS256",
      AUDITLOG_JWT_ROLE_MAP: "boss=root",
    };
    let message = "";
    try {
      loadConfig(env);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      message = (e as Error).message;
    }
    for (const name of [
      "AUDITLOG_JWT_HS256_SECRET",
      "AUDITLOG_JWT_JWKS_URL",
      "AUDITLOG_JWT_ISSUER",
      "AUDITLOG_JWT_AUDIENCE",
      "AUDITLOG_JWT_CLOCK_SKEW_S",
      "AUDITLOG_JWT_ALGORITHMS",
      "AUDITLOG_JWT_ROLE_MAP",
    ]) {
      expect(message).toContain(name);
    }
    expect(message).toContain('"none"');
  });

  it("refuses an HMAC algorithm without the secret and public-key ones without the JWKS", () => {
    expect(() => loadConfig({ ...BASE, AUDITLOG_JWT_JWKS_URL: "https://idp/jwks", AUDITLOG_JWT_ALGORITHMS: "HS256" })).toThrow(
      /AUDITLOG_JWT_ALGORITHMS: "HS256"/,
    );
    expect(() => loadConfig({ ...BASE, AUDITLOG_JWT_HS256_SECRET: SECRET, AUDITLOG_JWT_ALGORITHMS: "RS256" })).toThrow(
      /AUDITLOG_JWT_ALGORITHMS: "RS256"/,
    );
  });
});
