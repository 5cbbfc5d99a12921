// A call that fails because PostgreSQL is unreachable or restarting should
// tell the client to retry (UNAVAILABLE), not report a server bug (INTERNAL).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { errors as esErrors } from "@elastic/elasticsearch";
import pg from "pg";
import { TenantBusyError } from "../services/tenant-read-limiter.ts";
import { ReadTimeoutError } from "../store/tenant-scope.ts";

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"]);
// SQLSTATE class 08 (connection exception) and 57P01..57P03 (shutdown, crash, cannot connect now).
const SQLSTATE = /^(08...|57P0[123])$/;

export function isStorageUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (NETWORK_CODES.has(code) || SQLSTATE.test(code))) return true;
  return /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(err.message);
}

/**
 * A read that was too expensive is the caller's to narrow or retry, never a
 * server bug: a statement timeout (PostgreSQL) or request timeout
 * (Elasticsearch) is DEADLINE_EXCEEDED, a tenant over its concurrent-read
 * limit or PostgreSQL out of memory/resources is RESOURCE_EXHAUSTED. Null for
 * anything else.
 */
export function readLimitError(err: unknown): ConnectError | null {
  if (err instanceof ConnectError || !(err instanceof Error)) return null;
  if (err instanceof ReadTimeoutError) return new ConnectError(err.message, Code.DeadlineExceeded, undefined, undefined, err);
  if (err instanceof TenantBusyError) return new ConnectError(err.message, Code.ResourceExhausted, undefined, undefined, err);
  if (err instanceof esErrors.TimeoutError) {
    return new ConnectError("the search took too long and was stopped; narrow the filter or retry later", Code.DeadlineExceeded, undefined, undefined, err);
  }
  const code = (err as { code?: unknown }).code;
  // Class 53 (insufficient resources) and 54000 (program limit exceeded).
  if (err instanceof pg.DatabaseError && typeof code === "string" && /^(53...|54000)$/.test(code)) {
    return new ConnectError("the read needs more resources than the server allows; narrow the filter or retry later", Code.ResourceExhausted, undefined, undefined, err);
  }
  return null;
}

export function storageErrorsInterceptor(): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      if (!(err instanceof ConnectError) && isStorageUnavailable(err)) {
        throw new ConnectError("storage is unavailable; retry", Code.Unavailable, undefined, undefined, err);
      }
      throw readLimitError(err) ?? err;
    }
  };
}
