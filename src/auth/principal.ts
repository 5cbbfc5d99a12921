import { createContextKey } from "@connectrpc/connect";

export type ScopeName = "ingest" | "query" | "admin";

/** Who is calling: the operator (bootstrap key) or a tenant's API key. */
export type Principal = { kind: "operator" } | { kind: "key"; keyId: string; tenantId: string; scopes: ReadonlySet<ScopeName> };

export const principalKey = createContextKey<Principal | null>(null, { description: "authenticated caller" });
