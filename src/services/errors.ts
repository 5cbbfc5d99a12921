// The one place where what went wrong below the handlers becomes a Connect
// code. Stores, search backends, the domain and the limiter throw their own
// error classes and know nothing of RPC; each class is answered here, once,
// for the RPCs (errorsInterceptor) and for GET /v1/export alike. What is not
// listed is a bug and stays INTERNAL.
//
// | error                                        | code                |
// |----------------------------------------------|---------------------|
// | storage unreachable/restarting (platform)    | UNAVAILABLE, retry  |
// | group commit closed (shutting down)          | UNAVAILABLE         |
// | UnknownTenantError (no chain head)           | FAILED_PRECONDITION |
// | ReadTimeoutError, Elasticsearch timeout      | DEADLINE_EXCEEDED   |
// | TenantBusyError, PostgreSQL 53xxx/54000      | RESOURCE_EXHAUSTED  |
// | RateLimitError (tenant or key over its rate) | RESOURCE_EXHAUSTED  |
// | TooManyStreamsError (key's open streams)     | RESOURCE_EXHAUSTED  |
// | TailOverflowError (tail client too slow)     | RESOURCE_EXHAUSTED  |
// | PageTokenError, ChainRangeError              | INVALID_ARGUMENT    |
// | FilterFieldError, QuerySyntaxError           | INVALID_ARGUMENT    |
// | TooManyBucketsError                          | INVALID_ARGUMENT    |
// | TenantExistsError                            | ALREADY_EXISTS      |
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { errors as esErrors } from "@elastic/elasticsearch";
import pg from "pg";
import { ChainRangeError } from "../domain/chain-verification.ts";
import { FilterFieldError } from "../domain/event-query.ts";
import { PageTokenError } from "../domain/page-token.ts";
import { TailOverflowError } from "../domain/tail-subscribers.ts";
import { QuerySyntaxError } from "../domain/query-string.ts";
import { isStorageUnavailable } from "../platform/storage-errors.ts";
import { TooManyBucketsError } from "../search/stats.ts";
import { UnknownTenantError } from "../store/event-writer.ts";
import { ClosedError } from "../store/group-commit.ts";
import { ReadTimeoutError } from "../store/tenant-scope.ts";
import { TenantExistsError } from "../store/tenant-store.ts";
import { TenantBusyError } from "./tenant-read-limiter.ts";
import { RateLimitError } from "./rate-limiter.ts";
import { TooManyStreamsError } from "./stream-limits.ts";

const STORAGE_UNAVAILABLE = "storage is unavailable; retry";

function wrap(err: Error, message: string, code: Code): ConnectError {
  return new ConnectError(message, code, undefined, undefined, err);
}

/** The answer to `err`, or null when it is none of the errors above (a bug: the caller lets it become INTERNAL). */
export function connectErrorOf(err: unknown): ConnectError | null {
  if (err instanceof ConnectError) return err;
  if (!(err instanceof Error)) return null;
  if (isStorageUnavailable(err)) return wrap(err, STORAGE_UNAVAILABLE, Code.Unavailable);
  if (err instanceof ClosedError) return wrap(err, err.message, Code.Unavailable);
  if (err instanceof UnknownTenantError) {
    return wrap(
      err,
      `tenant "${err.tenantId}" does not exist on this server (it has no hash chain), so its events cannot be stored; ` +
        "retrying will not help: ask the operator to restore the tenant",
      Code.FailedPrecondition,
    );
  }
  if (err instanceof ReadTimeoutError) return wrap(err, err.message, Code.DeadlineExceeded);
  if (err instanceof esErrors.TimeoutError) {
    return wrap(err, "the search took too long and was stopped; narrow the filter or retry later", Code.DeadlineExceeded);
  }
  if (err instanceof TenantBusyError) return wrap(err, err.message, Code.ResourceExhausted);
  if (err instanceof RateLimitError) return wrap(err, err.message, Code.ResourceExhausted);
  if (err instanceof TooManyStreamsError) return wrap(err, err.message, Code.ResourceExhausted);
  if (err instanceof TailOverflowError) return wrap(err, err.message, Code.ResourceExhausted);
  const code = (err as { code?: unknown }).code;
  // Class 53 (insufficient resources) and 54000 (program limit exceeded).
  if (err instanceof pg.DatabaseError && typeof code === "string" && /^(53...|54000)$/.test(code)) {
    return wrap(err, "the read needs more resources than the server allows; narrow the filter or retry later", Code.ResourceExhausted);
  }
  if (err instanceof PageTokenError) return wrap(err, `page_token: ${err.message}`, Code.InvalidArgument);
  if (err instanceof ChainRangeError) return wrap(err, `${err.field}: ${err.message}`, Code.InvalidArgument);
  if (err instanceof FilterFieldError) return wrap(err, `filter.${err.field}: ${err.message}`, Code.InvalidArgument);
  // Its message starts with "query: ".
  if (err instanceof QuerySyntaxError) return wrap(err, `filter.${err.message}`, Code.InvalidArgument);
  if (err instanceof TooManyBucketsError) return wrap(err, `interval: ${err.message}`, Code.InvalidArgument);
  if (err instanceof TenantExistsError) return wrap(err, err.message, Code.AlreadyExists);
  return null;
}

/** For `catch (err) { throw asConnectError(err); }` where the error may be one of ours. */
export function asConnectError(err: unknown): unknown {
  return connectErrorOf(err) ?? err;
}

async function* mappedMessages<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw asConnectError(err);
  }
}

/**
 * Applies connectErrorOf to every call, including errors a server stream
 * raises after its first message (an export page that times out), which
 * a try/catch around next() alone would miss.
 */
export function errorsInterceptor(): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: mappedMessages(res.message) } : res;
    } catch (err) {
      throw asConnectError(err);
    }
  };
}
