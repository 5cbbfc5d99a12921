// Every RPC except health checks and reflection needs `Authorization: Bearer
// <key or token>` (authenticate.ts). Finer checks (which tenant an admin call may
// touch) are made by the handlers with the principal set here.
import type { Interceptor } from "@connectrpc/connect";
import { authenticateRequest } from "./authenticate.ts";
import type { Authenticator } from "./authenticator.ts";
import type { TenantStatus } from "./tenant-status.ts";
import { principalKey, TENANT_HEADER } from "./principal.ts";
import { withSpan } from "../platform/tracing.ts";

const PUBLIC_SERVICES = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** `tenants`: refuses callers acting on a suspended tenant (authenticate.ts). */
export function authInterceptor(auth: Authenticator, tenants?: TenantStatus): Interceptor {
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (PUBLIC_SERVICES.has(service)) return next(req);
    const creds = { authorization: req.header.get("authorization"), tenant: req.header.get(TENANT_HEADER) };
    const principal = await withSpan("authenticate", () => authenticateRequest(auth, creds, service, req.method.name, tenants));
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
