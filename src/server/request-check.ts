// Runs the generic request check (src/domain/request-check.ts) on every
// message a client sends to the application's services, unary and streamed,
// before a handler sees it: a client mistake is INVALID_ARGUMENT naming the
// field, instead of an error from PostgreSQL reported as INTERNAL.
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { requestViolation } from "../domain/request-check.ts";
import { fieldError } from "../platform/error-details.ts";

// Events are validated one by one and refused per event (REJECTED in the
// summary), whether read as the contract's type or as the binary twin's.
const SKIP = new Set(["auditlog.v1.Event", "auditlog.internal.v1.EventWire"]);

function check(desc: DescMessage, message: object): void {
  const v = requestViolation(desc, message, SKIP);
  if (v) throw fieldError(v.field, v.reason);
}

async function* checked<T extends object>(desc: DescMessage, messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    for await (const m of messages) {
      check(desc, m);
      yield m;
    }
  } catch (err) {
    // A streamed message that is not valid protobuf is a client mistake;
    // connect-es reports it as INTERNAL (see parse-error-status.ts, which
    // fixes the status on the wire; here the access log learns it too).
    if (err instanceof ConnectError && err.code === Code.Internal && err.rawMessage.startsWith("parse binary")) {
      throw new ConnectError(err.rawMessage, Code.InvalidArgument, undefined, undefined, err);
    }
    throw err;
  }
}

export function requestCheckInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next({ ...req, message: checked(req.method.input, req.message) });
    check(req.method.input, req.message);
    return next(req);
  };
}
