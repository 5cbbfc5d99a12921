// Refuses an Append over its tenant's or key's ingest rate before its body
// is read: a client looping on refused Appends of 100-1,000 events otherwise
// costs the replica the decoding of every refused message (the handler can
// only count events once they are decoded), CPU every other tenant shares.
// The transport runs this gate after the request headers and before the body
// (src/server/request-gate.ts); it answers RESOURCE_EXHAUSTED exactly as the
// handler would (src/services/errors.ts: the message, google.rpc.RetryInfo).
//
// The caller is authenticated from the headers, once: the auth interceptor
// reuses the outcome (auth-interceptor.ts, authenticateEarly). A call whose
// authentication fails is not answered here but by the interceptor, as any
// other call, so every refusal but the rate's keeps its one path.
//
// The message's size is not known before it is decoded, so the gate asks
// the limiter whether a call of unknown size fits (RateLimiter.exhausted: one
// event, or as many as the subject's last refused call asked for). A call
// that passes the gate is still counted by the handler, which refuses it if
// it turns out larger than what is left. An Ingest stream is not gated: its
// messages wait for their tokens by design (ingest-service.ts), and it is
// read one message at a time anyway.
import type { HandlerContext } from "@connectrpc/connect";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { authenticateEarly } from "../auth/auth-interceptor.ts";
import type { Authenticator } from "../auth/authenticator.ts";
import type { Principal } from "../auth/principal.ts";
import type { TenantStatus } from "../auth/tenant-status.ts";
import { connectErrorOf } from "./errors.ts";
import { limitSubjectOf } from "./limit-subject.ts";
import type { RateLimiter } from "./rate-limiter.ts";

export type IngestRateGateDeps = {
  auth: Authenticator;
  tenants?: TenantStatus;
  /** The ingest RateLimiter the handlers spend from. */
  limiter: RateLimiter;
};

const APPEND = IngestService.method.append;

// By name: binary Appends are served by a copy of the method that reads
// them with another request type (src/server/binary-twin.ts).
const isAppend = (ctx: HandlerContext) => ctx.method.name === APPEND.name && ctx.service.typeName === APPEND.parent.typeName;

/** The gate for the transport's `requestGate`; it throws the refusal, or returns to let the call go on. */
export function ingestRateGate(deps: IngestRateGateDeps): (ctx: HandlerContext) => Promise<void> {
  return async (ctx) => {
    if (!isAppend(ctx) || !deps.limiter.limited) return;
    let principal: Principal;
    try {
      principal = await authenticateEarly(deps.auth, deps.tenants, ctx.values, ctx.requestHeader, ctx.service.typeName, ctx.method.name);
    } catch {
      // Not lost: the auth interceptor takes this same outcome and answers it.
      return;
    }
    const subject = limitSubjectOf(principal);
    const refusal = subject ? deps.limiter.exhausted(subject) : null;
    if (refusal) throw connectErrorOf(refusal)!;
  };
}
