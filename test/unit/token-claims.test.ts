// Claims -> subject, role and tenants (src/auth/token-claims.ts).
import { describe, expect, it } from "vitest";
import { DEFAULT_CLAIM_MAPPING, identityFromClaims } from "../../src/auth/token-claims.ts";

const id = (claims: Record<string, unknown>, m = DEFAULT_CLAIM_MAPPING) => identityFromClaims(claims, m);

describe("identityFromClaims", () => {
  it("reads tenants from an array or a string, the first configured claim present winning", () => {
    expect(id({ sub: "a", role: "user", tenants: ["t1", "t2", "t1"] })).toEqual({ subject: "a", role: "user", tenants: ["t1", "t2"] });
    expect(id({ sub: "a", role: "user", tenant_id: "t1" })?.tenants).toEqual(["t1"]);
    expect(id({ sub: "a", role: "user", tenants: [], tenant_id: "t1" })?.tenants).toEqual([]);
    expect(id({ sub: "a", role: "user", tenants: [1, "", "t"] })?.tenants).toEqual(["t"]);
  });

  it("maps role values, taking the widest of several; unknown values give no role", () => {
    const m = {
      ...DEFAULT_CLAIM_MAPPING,
      roleClaim: "realm_access.roles",
      roleMap: { "al-admin": "admin", "al-read": "auditor" } as const,
    };
    expect(id({ sub: "a", realm_access: { roles: ["offline", "al-read", "al-admin"] } }, m)?.role).toBe("admin");
    expect(id({ sub: "a", realm_access: { roles: ["offline"] } }, m)?.role).toBeNull();
    expect(id({ sub: "a", role: "root" })?.role).toBeNull();
    expect(id({ sub: "a", role: "constructor" })?.role).toBeNull();
  });

  it("prefers a claim named exactly like the setting over a dotted path", () => {
    const m = { ...DEFAULT_CLAIM_MAPPING, tenantClaims: ["https://example.com/tenants"] };
    expect(id({ sub: "a", "https://example.com/tenants": ["t"] }, m)?.tenants).toEqual(["t"]);
  });

  it("refuses tokens without a non-empty string subject", () => {
    expect(id({ role: "user", tenants: ["t"] })).toBeNull();
    expect(id({ sub: "", role: "user", tenants: ["t"] })).toBeNull();
    expect(id({ sub: 7, role: "user", tenants: ["t"] })).toBeNull();
  });
});
