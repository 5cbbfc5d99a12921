// A call that fails because PostgreSQL is unreachable or restarting should
// tell the client to retry (UNAVAILABLE), not report a server bug (INTERNAL).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"]);
// SQLSTATE class 08 (connection exception) and 57P01..57P03 (shutdown, crash, cannot connect now).
const SQLSTATE = /^(08...|57P0[123])$/;

export function isStorageUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (NETWORK_CODES.has(code) || SQLSTATE.test(code))) return true;
  return /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(err.message);
}

export function storageErrorsInterceptor(): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      if (!(err instanceof ConnectError) && isStorageUnavailable(err)) {
        throw new ConnectError("storage is unavailable; retry", Code.Unavailable, undefined, undefined, err);
      }
      throw err;
    }
  };
}
