// Every RPC except health checks and reflection needs `Authorization: Bearer
// <key or token>` (authenticate.ts). Finer checks (which tenant an admin call may
// touch) are made by the handlers with the principal set here.
import { type ContextValues, createContextKey, type Interceptor } from "@connectrpc/connect";
import { authenticateRequest } from "./authenticate.ts";
import type { Authenticator } from "./authenticator.ts";
import type { TenantStatus } from "./tenant-status.ts";
import { type Principal, principalKey, TENANT_HEADER } from "./principal.ts";
import { withSpan } from "../platform/tracing.ts";

/**
 * An authentication of this request started before its body was read (the
 * ingest rate gate, src/services/ingest-rate-gate.ts): the interceptor takes
 * its outcome, principal or error, instead of authenticating again.
 */
const earlyAuthenticationKey = createContextKey<Promise<Principal> | undefined>(undefined, { description: "early authentication" });

/**
 * Authenticates a request from its headers alone, once: the outcome is kept
 * in the request's context values for the auth interceptor, which answers a
 * failure exactly as if it had authenticated itself.
 */
export function authenticateEarly(
  auth: Authenticator,
  tenants: TenantStatus | undefined,
  values: ContextValues,
  header: Headers,
  service: string,
  method: string,
): Promise<Principal> {
  let outcome = values.get(earlyAuthenticationKey);
  if (!outcome) {
    const creds = { authorization: header.get("authorization"), tenant: header.get(TENANT_HEADER) };
    outcome = authenticateRequest(auth, creds, service, method, tenants);
    values.set(earlyAuthenticationKey, outcome);
  }
  return outcome;
}

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
    const early = req.contextValues.get(earlyAuthenticationKey);
    const creds = { authorization: req.header.get("authorization"), tenant: req.header.get(TENANT_HEADER) };
    const principal = await (early ?? withSpan("authenticate", () => authenticateRequest(auth, creds, service, req.method.name, tenants)));
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
