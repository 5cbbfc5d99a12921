// Who is calling and whether they may: the one check behind every RPC (the
// auth interceptor) and GET /v1/export, so that both answer alike. Missing or
// invalid key: UNAUTHENTICATED. A key without the scope the service needs:
// PERMISSION_DENIED. A key store that cannot be reached is not decided here:
// its error propagates, and src/services/errors.ts answers it UNAVAILABLE
// (503 on HTTP), never as a bad key.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Authenticator } from "./authenticator.ts";
import type { Principal, ScopeName } from "./principal.ts";

const SERVICE_SCOPES: Record<string, ScopeName> = {
  "auditlog.v1.IngestService": "ingest",
  "auditlog.v1.QueryService": "query",
  "auditlog.v1.AdminService": "admin",
};

export function bearerToken(header: string | null): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

export function authorize(principal: Principal, service: string): void {
  const scope = SERVICE_SCOPES[service];
  if (!scope) throw new ConnectError(`no access rule for ${service}`, Code.PermissionDenied);
  if (principal.kind === "operator") {
    // The operator manages tenants and keys; it owns no events.
    if (scope !== "admin") {
      throw new ConnectError("the bootstrap key can only call AdminService; create a tenant API key", Code.PermissionDenied);
    }
    return;
  }
  if (!principal.scopes.has(scope)) {
    throw new ConnectError(`this API key lacks the "${scope}" scope`, Code.PermissionDenied);
  }
}

/** The caller behind an `Authorization` header value, allowed to call `service` (a proto service's full name). */
export async function authenticateRequest(auth: Authenticator, authorization: string | null, service: string): Promise<Principal> {
  const token = bearerToken(authorization);
  if (!token) throw new ConnectError('missing "Authorization: Bearer <api key>" header', Code.Unauthenticated);
  const principal = await auth.authenticate(token);
  if (!principal) throw new ConnectError("invalid, expired or revoked API key", Code.Unauthenticated);
  authorize(principal, service);
  return principal;
}
