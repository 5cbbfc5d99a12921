// Helpers every handler uses: who is calling, and turning validation
// results into INVALID_ARGUMENT errors that name the field and the reason.
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { type Validator, violationsToProto } from "@bufbuild/protovalidate";
import { type Principal, principalKey, TENANT_HEADER } from "../auth/principal.ts";
import { invalidArgument } from "../platform/error-details.ts";

export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (!p) throw new ConnectError("not authenticated", Code.Unauthenticated);
  return p;
}

/** The tenant whose events the caller's key, or the tenant its token chose, may touch. */
export function tenantOf(ctx: HandlerContext): string {
  return tenantOfPrincipal(principalOf(ctx));
}

export function tenantOfPrincipal(p: Principal): string {
  if (p.kind === "operator") throw new ConnectError("this call needs a tenant API key or a person's token", Code.PermissionDenied);
  if (p.tenantId === null) {
    throw new ConnectError(`the token grants several tenants; name one in the ${TENANT_HEADER} header`, Code.InvalidArgument);
  }
  return p.tenantId;
}

/**
 * The actor whose events alone the caller may see: a User token's subject;
 * null for everyone else (the whole tenant).
 */
export function ownActorOf(p: Principal): string | null {
  return p.kind === "token" && p.role === "user" ? p.subject : null;
}

/**
 * Validates a whole request against the contract's rules; throws
 * INVALID_ARGUMENT with a google.rpc.BadRequest and, for clients that know
 * protovalidate, its own buf.validate.Violations (rule ids and paths).
 */
export function validateRequest<Desc extends DescMessage>(validator: Validator, schema: Desc, msg: MessageShape<Desc>): void {
  const r = validator.validate(schema, msg);
  if (r.kind === "error") throw r.error;
  if (r.kind === "invalid") {
    const [violations, desc] = violationsToProto(r.violations);
    throw invalidArgument(
      r.violations.map((v) => ({ field: pathToString(v.field), reason: v.message })),
      [{ desc, value: violations }],
    );
  }
}
