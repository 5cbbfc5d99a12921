// Every RPC except health checks and reflection needs `Authorization: Bearer
// <key or token>` (authenticate.ts). Finer checks (which tenant an admin call may
// touch) are made by the handlers with the principal set here.
import type { Interceptor } from "@connectrpc/connect";
import { authenticateRequest } from "./authenticate.ts";
import type { Authenticator } from "./authenticator.ts";
import { principalKey, TENANT_HEADER } from "./principal.ts";

const PUBLIC_SERVICES = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

export function authInterceptor(auth: Authenticator): Interceptor {
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (PUBLIC_SERVICES.has(service)) return next(req);
    const creds = { authorization: req.header.get("authorization"), tenant: req.header.get(TENANT_HEADER) };
    req.contextValues.set(principalKey, await authenticateRequest(auth, creds, service, req.method.name));
    return next(req);
  };
}
