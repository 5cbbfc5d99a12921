// Helpers every handler uses: who is calling, and turning validation
// results into INVALID_ARGUMENT errors that name the field and the reason.
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import { type Principal, principalKey } from "../auth/principal.ts";
import type { FieldViolation } from "../domain/event-validation.ts";

export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (!p) throw new ConnectError("not authenticated", Code.Unauthenticated);
  return p;
}

/** The tenant whose events a tenant key may touch. */
export function tenantOf(ctx: HandlerContext): string {
  const p = principalOf(ctx);
  if (p.kind !== "key") throw new ConnectError("this call needs a tenant API key", Code.PermissionDenied);
  return p.tenantId;
}

export function describeViolations(violations: readonly FieldViolation[]): string {
  return violations.map((v) => (v.field ? `${v.field}: ${v.reason}` : v.reason)).join("; ");
}

export function invalidArgument(violations: readonly FieldViolation[]): ConnectError {
  return new ConnectError(describeViolations(violations), Code.InvalidArgument);
}

/** Validates a whole request against the contract's rules; throws INVALID_ARGUMENT. */
export function validateRequest<Desc extends DescMessage>(validator: Validator, schema: Desc, msg: MessageShape<Desc>): void {
  const r = validator.validate(schema, msg);
  if (r.kind === "error") throw r.error;
  if (r.kind === "invalid") {
    throw invalidArgument(r.violations.map((v) => ({ field: pathToString(v.field), reason: v.message })));
  }
}
