// QueryService.ExportEvents and QueryService.GetStats.
//
// An export streams the file in chunks of about CHUNK_BYTES: the backend
// yields batches of records, each record becomes one NDJSON line or CSV row,
// and a chunk is handed on as soon as it is full. The handler is an async
// generator, so it only runs while the transport asks for the next message:
// a slow client pauses the export (HTTP/2 flow control, socket backpressure)
// and memory stays bounded by one backend batch plus one chunk, however many
// events match. The same chunks serve the plain HTTP download (export-http.ts).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type EventFilter,
  type ExportEventsRequest,
  ExportEventsRequestSchema,
  type ExportEventsResponse,
  ExportEventsResponseSchema,
  ExportFormat,
  type GetStatsRequest,
  GetStatsRequestSchema,
  type GetStatsResponse,
  GetStatsResponseSchema,
  SortOrder,
  StatsInterval as StatsIntervalEnum,
} from "../../gen/auditlog/v1/query_pb.js";
import { type StoredRecord, storedEventFromRecord } from "../domain/event-record.ts";
import { boundedQuery, type EventQuery, FilterFieldError, queryFromFilter, type SortDirection } from "../domain/event-query.ts";
import { csvHeader, csvRow, ndjsonLineOfRecord } from "../domain/export-format.ts";
import { parseQueryString, QuerySyntaxError } from "../domain/query-string.ts";
import { queryLimitProblem } from "../domain/query-limits.ts";
import { timestampFromMicros } from "../domain/timestamp.ts";
import type { SearchBackend, StatsInterval } from "../search/backend.ts";
import { TooManyBucketsError } from "../search/stats.ts";
import { tenantOf, validateRequest } from "./request-context.ts";
import { readLimitError } from "../server/storage-errors.ts";
import type { TenantReadLimiter } from "./tenant-read-limiter.ts";

/** Target size of one chunk; a chunk is flushed once it reaches this, so it may exceed it by one line. */
export const CHUNK_BYTES = 64 * 1024;
/** How long an export waits for `min_position` to become searchable. */
export const MIN_POSITION_WAIT_MS = 10_000;
const DEFAULT_TOP = 10;

export type ExportDeps = { validator: Validator; backend: SearchBackend; limiter?: TenantReadLimiter };

export type ExportFormatName = "ndjson" | "csv";

/** The EventFilter (structured fields and the `query` string) as one EventQuery; INVALID_ARGUMENT on a syntax error. */
export function queryOf(filter: EventFilter | undefined): EventQuery {
  let q: EventQuery;
  try {
    q = queryFromFilter(filter);
  } catch (err) {
    if (err instanceof FilterFieldError) throw new ConnectError(`filter.${err.field}: ${err.message}`, Code.InvalidArgument);
    throw err;
  }
  const fieldsProblem = queryLimitProblem(q.conditions);
  if (fieldsProblem) {
    const field = fieldsProblem.field ? `filter.${fieldsProblem.field}` : "filter";
    throw new ConnectError(`${field}: ${fieldsProblem.message}`, Code.InvalidArgument);
  }
  if (filter?.query) {
    try {
      q.conditions.push(...parseQueryString(filter.query));
    } catch (err) {
      if (err instanceof QuerySyntaxError) throw new ConnectError(`filter.${err.message}`, Code.InvalidArgument);
      throw err;
    }
    const problem = queryLimitProblem(q.conditions);
    if (problem) throw new ConnectError(`filter.query: ${problem.message}`, Code.InvalidArgument);
  }
  return boundedQuery(q);
}

export function directionOf(order: SortOrder): SortDirection {
  return order === SortOrder.ASCENDING ? "asc" : "desc";
}

/** Read your writes: waits (bounded) for `position` to be searchable; DEADLINE_EXCEEDED otherwise. */
export async function awaitPosition(backend: SearchBackend, tenantId: string, position: bigint): Promise<void> {
  if (position === 0n) return;
  if (!(await backend.waitForPosition(tenantId, position, MIN_POSITION_WAIT_MS))) {
    throw new ConnectError(
      `min_position ${position} did not become searchable within ${MIN_POSITION_WAIT_MS / 1000} s`,
      Code.DeadlineExceeded,
    );
  }
}

export type ExportPlan = {
  tenantId: string;
  q: EventQuery;
  direction: SortDirection;
  /** null: every matching event. */
  limit: bigint | null;
  format: ExportFormatName;
  /** CSV: cells as stored, without neutralising formula-leading ones. */
  keepFormulas?: boolean;
};

/**
 * The file as a sequence of byte chunks of about CHUNK_BYTES (the CSV header
 * is in the first). Nothing is read from the backend before the first
 * next(), and every chunk is produced only when asked for.
 */
export async function* exportChunks(backend: SearchBackend, plan: ExportPlan, signal: AbortSignal): AsyncGenerator<Buffer, void, undefined> {
  const csvOptions = { keepFormulas: plan.keepFormulas === true };
  const line = plan.format === "csv" ? (r: StoredRecord) => csvRow(storedEventFromRecord(r), csvOptions) : ndjsonLineOfRecord;
  let parts: string[] = plan.format === "csv" ? [csvHeader()] : [];
  let size = parts.length ? Buffer.byteLength(parts[0]!) : 0;
  for await (const batch of backend.export(plan.tenantId, plan.q, plan.direction, plan.limit, signal)) {
    for (const r of batch) {
      const text = line(r);
      parts.push(text);
      size += Buffer.byteLength(text);
      if (size >= CHUNK_BYTES) {
        const chunk = Buffer.from(parts.join(""));
        parts = [];
        size = 0;
        yield chunk;
      }
    }
  }
  if (parts.length) yield Buffer.from(parts.join(""));
}

/**
 * exportChunks holding one of the tenant's expensive-read slots for as long
 * as the export runs, with a read that was too expensive (a page over its
 * statement timeout, the tenant's limit) answered as such rather than INTERNAL.
 */
export async function* boundedExportChunks(
  backend: SearchBackend,
  plan: ExportPlan,
  signal: AbortSignal,
  limiter?: TenantReadLimiter,
): AsyncGenerator<Buffer, void, undefined> {
  let release: (() => void) | null = null;
  try {
    if (limiter) release = await limiter.acquire(plan.tenantId, signal);
    yield* exportChunks(backend, plan, signal);
  } catch (err) {
    throw readLimitError(err) ?? err;
  } finally {
    release?.();
  }
}

/** Validates an ExportEventsRequest of `tenantId` and turns it into a plan (INVALID_ARGUMENT on errors). */
export function exportPlan(validator: Validator, tenantId: string, req: ExportEventsRequest): ExportPlan {
  validateRequest(validator, ExportEventsRequestSchema, req);
  return {
    tenantId,
    q: queryOf(req.filter),
    direction: directionOf(req.order),
    limit: req.limit > 0n ? req.limit : null,
    format: req.format === ExportFormat.CSV ? "csv" : "ndjson",
    keepFormulas: req.csvKeepFormulas,
  };
}

/** QueryService.ExportEvents. */
export function exportEvents(deps: ExportDeps): (req: ExportEventsRequest, ctx: HandlerContext) => AsyncIterable<ExportEventsResponse> {
  const { validator, backend, limiter } = deps;
  return async function* (req, ctx) {
    const tenantId = tenantOf(ctx);
    const plan = exportPlan(validator, tenantId, req);
    await awaitPosition(backend, tenantId, req.minPosition);
    for await (const chunk of boundedExportChunks(backend, plan, ctx.signal, limiter)) {
      yield create(ExportEventsResponseSchema, { chunk });
    }
  };
}

const INTERVALS: Record<StatsIntervalEnum, StatsInterval> = {
  [StatsIntervalEnum.UNSPECIFIED]: "hour",
  [StatsIntervalEnum.MINUTE]: "minute",
  [StatsIntervalEnum.HOUR]: "hour",
  [StatsIntervalEnum.DAY]: "day",
  [StatsIntervalEnum.WEEK]: "week",
  [StatsIntervalEnum.MONTH]: "month",
};

/** Stored enum values carry no prefix; the API names them like the proto enums. */
const VALUE_PREFIX: Partial<Record<string, string>> = { severity: "SEVERITY_", outcome: "OUTCOME_" };

/** QueryService.GetStats. */
export function getStats(deps: ExportDeps): (req: GetStatsRequest, ctx: HandlerContext) => Promise<GetStatsResponse> {
  const { validator, backend, limiter } = deps;
  return async (req, ctx) => {
    const tenantId = tenantOf(ctx);
    validateRequest(validator, GetStatsRequestSchema, req);
    const q = queryOf(req.filter);
    let stats;
    try {
      const run = () => backend.stats(tenantId, q, INTERVALS[req.interval], req.top || DEFAULT_TOP, ctx.signal);
      stats = limiter ? await limiter.run(tenantId, ctx.signal, run) : await run();
    } catch (err) {
      if (err instanceof TooManyBucketsError) throw new ConnectError(`interval: ${err.message}`, Code.InvalidArgument);
      throw err;
    }
    return create(GetStatsResponseSchema, {
      total: stats.total,
      histogram: stats.histogram.map((b) => ({ start: timestampFromMicros(b.start), count: b.count })),
      top: stats.top.map((t) => ({
        field: t.field,
        values: t.values.map((v) => ({ value: (VALUE_PREFIX[t.field] ?? "") + v.value, count: v.count })),
      })),
    });
  };
}
