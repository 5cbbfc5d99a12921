// A verified token's claims -> who the person is, their role and the tenants
// they may act on. Pure; which claims hold what is configuration
// (AUDITLOG_JWT_*_CLAIM, AUDITLOG_JWT_ROLE_MAP), because every OIDC provider
// puts them elsewhere (docs/ACCESS.md).
import type { Role } from "./principal.ts";

export type ClaimMapping = {
  /** Claims tried in order; the first present one holds the tenants (a string or an array of strings). */
  tenantClaims: readonly string[];
  /** Holds the role: a string or an array of strings. */
  roleClaim: string;
  /** Claim value -> role; values not listed give no role. */
  roleMap: Readonly<Record<string, Role>>;
  /** Holds the person's id: the actor.id a User may see. */
  subjectClaim: string;
};

export const DEFAULT_CLAIM_MAPPING: ClaimMapping = {
  tenantClaims: ["tenants", "tenant_id"],
  roleClaim: "role",
  roleMap: { admin: "admin", auditor: "auditor", user: "user" },
  subjectClaim: "sub",
};

export type TokenIdentity = { subject: string; role: Role | null; tenants: string[] };

/** Admin may do all an Auditor may, an Auditor all a User may: several roles give the widest. */
const ROLE_RANK: Record<Role, number> = { user: 1, auditor: 2, admin: 3 };

/**
 * A claim by its name, or, when no claim has that exact name and it contains
 * dots, by the path (`realm_access.roles`). Exact names first, because
 * providers also use URLs as claim names (`https://example.com/tenants`).
 */
export function claimAt(claims: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  if (!name.includes(".")) return undefined;
  let v: unknown = claims;
  for (const part of name.split(".")) {
    if (typeof v !== "object" || v === null || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function strings(v: unknown): string[] {
  if (typeof v === "string") return v ? [v] : [];
  if (Array.isArray(v)) return v.filter((s): s is string => typeof s === "string" && s !== "");
  return [];
}

/** null when the token names nobody (no subject): such a token is no credential. */
export function identityFromClaims(claims: Record<string, unknown>, m: ClaimMapping): TokenIdentity | null {
  const subject = claimAt(claims, m.subjectClaim);
  // An empty subject would mean "no actor restriction" to the database policy; refuse it.
  if (typeof subject !== "string" || subject === "") return null;
  let tenants: string[] = [];
  for (const name of m.tenantClaims) {
    const v = claimAt(claims, name);
    if (v !== undefined) {
      tenants = [...new Set(strings(v))];
      break;
    }
  }
  let role: Role | null = null;
  for (const value of strings(claimAt(claims, m.roleClaim))) {
    const r = Object.hasOwn(m.roleMap, value) ? m.roleMap[value]! : null;
    if (r && (!role || ROLE_RANK[r] > ROLE_RANK[role])) role = r;
  }
  return { subject, role, tenants };
}
