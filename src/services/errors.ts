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
//   (ErrorInfo TAIL_BUFFER_OVERFLOW, metadata resume_position)
// | PageTokenError, ChainRangeError              | INVALID_ARGUMENT    |
// | FilterFieldError, QuerySyntaxError           | INVALID_ARGUMENT    |
// | ErasureFieldError                            | INVALID_ARGUMENT    |
// | TooManyBucketsError                          | INVALID_ARGUMENT    |
// | TenantExistsError                            | ALREADY_EXISTS      |
// | TenantNotFoundError                          | NOT_FOUND           |
// | TenantLifecycleError (not suspended, no or   | FAILED_PRECONDITION |
// |   an expired or another deletion token)      |                     |
//
// Every answer carries standard details (src/platform/error-details.ts):
// INVALID_ARGUMENT a google.rpc.BadRequest naming each bad field (a query
// syntax error also a google.rpc.ErrorInfo QUERY_SYNTAX with metadata
// `position`); ALREADY_EXISTS a google.rpc.ErrorInfo; UNAVAILABLE and
// RESOURCE_EXHAUSTED a google.rpc.RetryInfo (RETRY_DELAY_MS, the limiter's
// own delay, or withRetryInfo's default), unless retrying cannot help (a
// message larger than the burst: ErrorInfo BATCH_EXCEEDS_BURST instead).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import pg from "pg";
import { ChainRangeError } from "../domain/chain-verification.ts";
import { ErasureFieldError } from "../domain/erasure.ts";
import { FilterFieldError } from "../domain/event-query.ts";
import { PageTokenError } from "../domain/page-token.ts";
import { TailOverflowError } from "../domain/tail-subscribers.ts";
import { QuerySyntaxError } from "../domain/query-string.ts";
import { errorInfoDetail, fieldError, invalidArgument, retryableError, retryInfoDetail } from "../platform/error-details.ts";
import { isStorageUnavailable } from "../platform/storage-errors.ts";
import { TooManyBucketsError } from "../search/stats.ts";
import { UnknownTenantError } from "../store/event-writer.ts";
import { ClosedError } from "../store/group-commit.ts";
import { ReadTimeoutError } from "../store/tenant-scope.ts";
import { TenantExistsError, TenantLifecycleError, TenantNotFoundError } from "../store/tenant-store.ts";
import { TenantBusyError } from "./tenant-read-limiter.ts";
import { RateLimitError } from "./rate-limiter.ts";
import { TooManyStreamsError } from "./stream-limits.ts";

const STORAGE_UNAVAILABLE = "storage is unavailable; retry";

/** Retry delays told to clients (google.rpc.RetryInfo). */
export const RETRY_DELAY_MS = {
  /** PostgreSQL restarting or failing over, a replica shutting down: another attempt soon may reach a healthy one. */
  unavailable: 1_000,
  /** A tenant's expensive reads are all taken: each lasts seconds at most. */
  tenantBusy: 2_000,
  /** PostgreSQL out of resources for a read: give it time to recover. */
  databaseExhausted: 5_000,
};

/**
 * The Elasticsearch client's request timeout (its errors.TimeoutError, which
 * the transport names so and gives the `meta` and `options` of all its
 * errors; a DOMException "TimeoutError" has neither). Recognised by shape so
 * that this module does not load the client: without Elasticsearch the
 * service never does (docs/PERFORMANCE.md, "Round two: memory").
 */
function isElasticsearchTimeout(err: Error): boolean {
  return err.name === "TimeoutError" && "meta" in err && "options" in err;
}

function wrap(err: Error, message: string, code: Code): ConnectError {
  return new ConnectError(message, code, undefined, undefined, err);
}

function rateLimitError(err: RateLimitError): ConnectError {
  if (Number.isFinite(err.retryAfterMs)) return retryableError(err.message, Code.ResourceExhausted, err.retryAfterMs, err);
  // Larger than the burst: no delay helps, only smaller messages.
  return new ConnectError(err.message, Code.ResourceExhausted, undefined, [errorInfoDetail("BATCH_EXCEEDS_BURST", {})], err);
}

/** The answer to `err`, or null when it is none of the errors above (a bug: the caller lets it become INTERNAL). */
export function connectErrorOf(err: unknown): ConnectError | null {
  if (err instanceof ConnectError) return err;
  if (!(err instanceof Error)) return null;
  if (isStorageUnavailable(err)) return retryableError(STORAGE_UNAVAILABLE, Code.Unavailable, RETRY_DELAY_MS.unavailable, err);
  if (err instanceof ClosedError) return retryableError(err.message, Code.Unavailable, RETRY_DELAY_MS.unavailable, err);
  if (err instanceof UnknownTenantError) {
    return wrap(
      err,
      `tenant "${err.tenantId}" does not exist on this server (it has no hash chain), so its events cannot be stored; ` +
        "retrying will not help: ask the operator to restore the tenant",
      Code.FailedPrecondition,
    );
  }
  if (err instanceof ReadTimeoutError) return wrap(err, err.message, Code.DeadlineExceeded);
  if (isElasticsearchTimeout(err)) {
    return wrap(err, "the search took too long and was stopped; narrow the filter or retry later", Code.DeadlineExceeded);
  }
  if (err instanceof TenantBusyError) return retryableError(err.message, Code.ResourceExhausted, RETRY_DELAY_MS.tenantBusy, err);
  if (err instanceof RateLimitError) return rateLimitError(err);
  if (err instanceof TooManyStreamsError) return wrap(err, err.message, Code.ResourceExhausted);
  if (err instanceof TailOverflowError) {
    // Not a retry after a delay: the client reconnects at once from the position.
    return new ConnectError(
      err.message,
      Code.ResourceExhausted,
      undefined,
      [errorInfoDetail("TAIL_BUFFER_OVERFLOW", { resume_position: String(err.resumePosition) })],
      err,
    );
  }
  const code = (err as { code?: unknown }).code;
  // Class 53 (insufficient resources) and 54000 (program limit exceeded).
  if (err instanceof pg.DatabaseError && typeof code === "string" && /^(53...|54000)$/.test(code)) {
    return retryableError(
      "the read needs more resources than the server allows; narrow the filter or retry later",
      Code.ResourceExhausted,
      RETRY_DELAY_MS.databaseExhausted,
      err,
    );
  }
  if (err instanceof PageTokenError) return fieldError("page_token", err.message, err);
  if (err instanceof ChainRangeError) return fieldError(err.field, err.message, err);
  if (err instanceof FilterFieldError) return fieldError(`filter.${err.field}`, err.message, err);
  if (err instanceof ErasureFieldError) return fieldError("field", err.message, err);
  if (err instanceof QuerySyntaxError) {
    // Its message starts with "query: " and names the position, which ErrorInfo also gives as a number.
    return invalidArgument(
      [{ field: "filter.query", reason: err.message.slice("query: ".length) }],
      [errorInfoDetail("QUERY_SYNTAX", { position: String(err.position) })],
      err,
    );
  }
  if (err instanceof TooManyBucketsError) return fieldError("interval", err.message, err);
  if (err instanceof TenantNotFoundError) return wrap(err, `tenant_id: ${err.message}`, Code.NotFound);
  if (err instanceof TenantLifecycleError) return wrap(err, err.message, Code.FailedPrecondition);
  if (err instanceof TenantExistsError) {
    return new ConnectError(err.message, Code.AlreadyExists, undefined, [errorInfoDetail("TENANT_EXISTS", {})], err);
  }
  return null;
}

const RETRYABLE = new Set([Code.Unavailable, Code.ResourceExhausted]);

/**
 * `err` with a google.rpc.RetryInfo when it is UNAVAILABLE or
 * RESOURCE_EXHAUSTED without details (raised outside this mapping), so that
 * every such answer says when to retry.
 */
export function withRetryInfo(err: ConnectError): ConnectError {
  if (!RETRYABLE.has(err.code) || err.details.length > 0) return err;
  return new ConnectError(err.rawMessage, err.code, err.metadata, [retryInfoDetail(RETRY_DELAY_MS.unavailable)], err.cause);
}

/** For `catch (err) { throw asConnectError(err); }` where the error may be one of ours. */
export function asConnectError(err: unknown): unknown {
  const ce = connectErrorOf(err);
  return ce ? withRetryInfo(ce) : err;
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
