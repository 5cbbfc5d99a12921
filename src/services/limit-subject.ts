// Whose rate and stream limits a call spends: its tenant's, and its own
// under a string the principal gives (an API key's id, a token's subject).
// The operator acts on no tenant and is not limited.
import { callerIdOf, type Principal } from "../auth/principal.ts";
import type { RateSubject } from "./rate-limiter.ts";

export function limitSubjectOf(p: Principal | null | undefined): RateSubject | null {
  if (!p) return null;
  switch (p.kind) {
    case "key":
      return { tenantId: p.tenantId, key: callerIdOf(p) };
    case "token":
      // Without a chosen tenant the call is refused by its handler anyway.
      return p.tenantId === null ? null : { tenantId: p.tenantId, key: callerIdOf(p) };
    default:
      return null;
  }
}
