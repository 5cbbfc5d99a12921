// Every RPC except health checks and reflection needs `Authorization: Bearer
// <key>`. Missing or invalid: UNAUTHENTICATED. A key without the scope the
// service needs: PERMISSION_DENIED. Finer checks (which tenant an admin call
// may touch) are made by the handlers with the principal set here.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Authenticator } from "./authenticator.ts";
import { type Principal, principalKey, type ScopeName } from "./principal.ts";

const PUBLIC_SERVICES = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

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

export function authInterceptor(auth: Authenticator): Interceptor {
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (PUBLIC_SERVICES.has(service)) return next(req);
    const token = bearerToken(req.header.get("authorization"));
    if (!token) throw new ConnectError('missing "Authorization: Bearer <api key>" header', Code.Unauthenticated);
    const principal = await auth.authenticate(token);
    if (!principal) throw new ConnectError("invalid, expired or revoked API key", Code.Unauthenticated);
    authorize(principal, service);
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
