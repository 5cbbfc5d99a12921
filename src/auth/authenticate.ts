// Who is calling and whether they may: the one check behind every RPC (the
// auth interceptor) and GET /v1/export, so that both answer alike. Missing or
// invalid key or token: UNAUTHENTICATED. A key without the scope the service
// needs, a role that may not call the method, a tenant the credential does
// not grant: PERMISSION_DENIED. A key store or identity provider that cannot
// be reached is not decided here: its error propagates, and
// src/services/errors.ts answers it UNAVAILABLE (503 on HTTP), never as a bad
// credential. A suspended tenant: FAILED_PRECONDITION "tenant suspended"
// (tenant-status.ts). A refusal of an authenticated caller remembers who it
// was (refusalOf), so the access audit can record it.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Authenticator } from "./authenticator.ts";
import { TokenRefusedError } from "./jwt-verifier.ts";
import { type Principal, type Role, type ScopeName, TENANT_HEADER } from "./principal.ts";
import type { TenantStatus } from "./tenant-status.ts";

const INGEST = "auditlog.v1.IngestService";
const QUERY = "auditlog.v1.QueryService";
const ADMIN = "auditlog.v1.AdminService";

const SERVICE_SCOPES: Record<string, ScopeName> = { [INGEST]: "ingest", [QUERY]: "query", [ADMIN]: "admin" };

const READ_OWN = ["GetEvent", "SearchEvents", "ExportEvents", "GetStats"];
// The live tail is not actor-restricted, so not a User's.
// Checkpoints vouch for the whole tenant's chain, like VerifyChain: not a User's.
const READ_ALL = [...READ_OWN, "VerifyChain", "GetIndexStatus", "TailEvents", "ListCheckpoints", "CreateCheckpoint"];
const MANAGE_KEYS = ["CreateApiKey", "ListApiKeys", "RotateApiKey", "RevokeApiKey"];
const DATA_PROTECTION = ["GetMaskingRules", "SetMaskingRules", "RotateDataKey"];
const DATA_LIFECYCLE = ["GetRetentionPolicy", "SetRetentionPolicy", "EraseSubject", "RestoreArchive"];

/**
 * What each role of a person's token may call, by service and method; a
 * method not listed is refused (new RPCs are closed to tokens until listed
 * here). No role may ingest: producers use API keys. A User's reads are
 * further restricted to their own events (the handlers, PostgreSQL and
 * Elasticsearch each enforce it); chain verification and index status show
 * the whole tenant, so they are not a User's.
 */
const ROLE_METHODS: Record<Role, Record<string, ReadonlySet<string>>> = {
  // An admin can make itself a query key anyway; refusing it reads would only be a detour.
  admin: { [ADMIN]: new Set([...MANAGE_KEYS, ...DATA_PROTECTION, ...DATA_LIFECYCLE]), [QUERY]: new Set(READ_ALL) },
  auditor: { [QUERY]: new Set(READ_ALL) },
  user: { [QUERY]: new Set(READ_OWN) },
};

export type Credentials = {
  /** The `Authorization` header's value. */
  authorization: string | null;
  /** The `x-auditlog-tenant` header's value: which of a token's tenants the request acts on. */
  tenant?: string | null;
};

export function bearerToken(header: string | null): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

/** May `principal` call `method` (e.g. "SearchEvents") of `service` (a proto service's full name)? PERMISSION_DENIED if not. */
export function authorize(principal: Principal, service: string, method?: string): void {
  const scope = SERVICE_SCOPES[service];
  if (!scope) throw new ConnectError(`no access rule for ${service}`, Code.PermissionDenied);
  if (principal.kind === "operator") {
    // The operator manages tenants and keys; it owns no events.
    if (scope !== "admin") {
      throw new ConnectError("the bootstrap key can only call AdminService; create a tenant API key", Code.PermissionDenied);
    }
    return;
  }
  if (principal.kind === "token") {
    if (!principal.role) throw new ConnectError("the token carries no role this service knows", Code.PermissionDenied);
    if (principal.tenants.length === 0) throw new ConnectError("the token grants no tenant", Code.PermissionDenied);
    const allowed = ROLE_METHODS[principal.role][service];
    if (!allowed || method === undefined || !allowed.has(method)) {
      throw new ConnectError(`the ${principal.role} role may not call ${service}/${method ?? "?"}`, Code.PermissionDenied);
    }
    return;
  }
  if (!principal.scopes.has(scope)) {
    throw new ConnectError(`this API key lacks the "${scope}" scope`, Code.PermissionDenied);
  }
}

/**
 * The tenant a request acts on, from the `x-auditlog-tenant` header: a token
 * may choose any it grants (and needs to when it grants several); an API key
 * keeps its own, and naming another is refused rather than ignored.
 */
export function withRequestedTenant(principal: Principal, requested: string | null | undefined): Principal {
  if (principal.kind === "operator") return principal;
  if (principal.kind === "key") {
    if (requested && requested !== principal.tenantId) {
      throw new ConnectError(`${TENANT_HEADER}: this API key belongs to another tenant`, Code.PermissionDenied);
    }
    return principal;
  }
  if (requested) {
    if (!principal.tenants.includes(requested)) {
      throw new ConnectError(`${TENANT_HEADER}: the token does not grant tenant "${requested}"`, Code.PermissionDenied);
    }
    return { ...principal, tenantId: requested };
  }
  return { ...principal, tenantId: principal.tenants.length === 1 ? principal.tenants[0]! : null };
}

/**
 * The caller behind a request's credentials, allowed to call `method` of
 * `service`, acting on a tenant that is not suspended (with `tenants`).
 */
export async function authenticateRequest(
  auth: Authenticator,
  creds: Credentials,
  service: string,
  method?: string,
  tenants?: TenantStatus,
): Promise<Principal> {
  const token = bearerToken(creds.authorization);
  if (!token) throw new ConnectError('missing "Authorization: Bearer <api key or token>" header', Code.Unauthenticated);
  let principal: Principal | null;
  try {
    principal = await auth.authenticate(token);
  } catch (err) {
    if (err instanceof TokenRefusedError) throw new ConnectError(`token refused: ${err.message}`, Code.Unauthenticated);
    throw err;
  }
  if (!principal) throw new ConnectError("invalid, expired or revoked API key", Code.Unauthenticated);
  try {
    authorize(principal, service, method);
    const chosen = withRequestedTenant(principal, creds.tenant);
    // The operator owns no tenant; everyone else acts on one, which must not be suspended.
    const tenantId = chosen.kind === "operator" ? null : chosen.tenantId;
    const state = tenantId && tenants ? await tenants.state(tenantId) : "active";
    if (state === "suspended") {
      throw new ConnectError(`tenant suspended: "${tenantId}" is suspended; its data is kept until it is resumed`, Code.FailedPrecondition);
    }
    // A key outliving its deleted tenant in some replica's cache is no key at all.
    if (state === "missing" && chosen.kind === "key") {
      throw new ConnectError("invalid, expired or revoked API key", Code.Unauthenticated);
    }
    return chosen;
  } catch (err) {
    // A key whose tenant is gone is no credential: attributable to nobody.
    if (!(err instanceof ConnectError && err.code === Code.Unauthenticated)) {
      refusals.set(err as object, { principal, tenantId: refusedTenant(principal, creds.tenant) });
    }
    throw err;
  }
}

/** An authenticated caller that was refused, and the tenant its refusal belongs to (null: none it may be recorded in). */
export type Refusal = { principal: Principal; tenantId: string | null };

const refusals = new WeakMap<object, Refusal>();

/**
 * Who was refused, when `err` is authenticateRequest's refusal of an
 * authenticated caller (for the access audit); undefined for any other error,
 * including an unauthenticated call, which is attributable to nobody.
 */
export function refusalOf(err: unknown): Refusal | undefined {
  return typeof err === "object" && err !== null ? refusals.get(err) : undefined;
}

/**
 * The tenant a refused call is recorded in: the one it asked for if the
 * credential grants it, else the credential's own single tenant. A caller
 * never gets to write into the log of a tenant it holds no grant for.
 */
function refusedTenant(p: Principal, requested: string | null | undefined): string | null {
  if (p.kind === "operator") return null;
  if (p.kind === "key") return p.tenantId;
  if (requested && p.tenants.includes(requested)) return requested;
  return p.tenants.length === 1 ? p.tenants[0]! : null;
}
