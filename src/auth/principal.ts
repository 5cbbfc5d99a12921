import { createContextKey } from "@connectrpc/connect";

export type ScopeName = "ingest" | "query" | "admin";

/** What a person's token lets them do (docs/ACCESS.md); mapped from a claim (token-claims.ts). */
export type Role = "admin" | "auditor" | "user";

/**
 * Who is calling, whatever the credential: the operator (bootstrap key), a
 * tenant's API key, or a person's token (JWT / OIDC).
 *
 * A token names the tenants it grants; `tenantId` is the one this request
 * acts on (its only grant, or the one the `x-auditlog-tenant` header chose
 * among them; null when it grants several and the request named none).
 * A User may only see events whose actor.id is their `subject`.
 */
export type Principal =
  | { kind: "operator" }
  | { kind: "key"; keyId: string; tenantId: string; scopes: ReadonlySet<ScopeName> }
  | { kind: "token"; subject: string; role: Role | null; tenants: readonly string[]; tenantId: string | null };

export const principalKey = createContextKey<Principal | null>(null, { description: "authenticated caller" });

/** One string per caller: `key:<API key id>`, `sub:<token subject>` or `operator` (rate buckets, the access audit's folding, the refusal tarpit). */
export function callerIdOf(p: Principal): string {
  return p.kind === "key" ? `key:${p.keyId}` : p.kind === "token" ? `sub:${p.subject}` : "operator";
}

/** The request header that chooses the tenant among those a token grants. */
export const TENANT_HEADER = "x-auditlog-tenant";
