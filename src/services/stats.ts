// GetStats: a validated request's filter, interval and top count run on the
// search backend, holding one of the tenant's expensive-read slots, and the
// backend's Stats as the response.
import { create } from "@bufbuild/protobuf";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type GetStatsRequest,
  GetStatsRequestSchema,
  type GetStatsResponse,
  GetStatsResponseSchema,
  StatsInterval as StatsIntervalEnum,
} from "../../gen/auditlog/v1/query_pb.js";
import { restrictToActor } from "../domain/event-query.ts";
import { timestampFromMicros } from "../domain/timestamp.ts";
import type { SearchBackend, Stats, StatsInterval } from "../search/backend.ts";
import { asConnectError } from "./errors.ts";
import { queryOf } from "./event-filter.ts";
import { validateRequest } from "./request-context.ts";
import type { TenantReadLimiter } from "./tenant-read-limiter.ts";

const DEFAULT_TOP = 10;

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

export type StatsDeps = { validator: Validator; backend: SearchBackend; limiter?: TenantReadLimiter };

/** `actorId`: counts only that actor's events (a User's own activity). */
export async function tenantStats(
  deps: StatsDeps,
  tenantId: string,
  req: GetStatsRequest,
  signal: AbortSignal,
  actorId: string | null = null,
): Promise<GetStatsResponse> {
  const { validator, backend, limiter } = deps;
  validateRequest(validator, GetStatsRequestSchema, req);
  const q = restrictToActor(queryOf(req.filter), actorId);
  let stats: Stats;
  try {
    const run = () => backend.stats(tenantId, q, INTERVALS[req.interval], req.top || DEFAULT_TOP, signal);
    stats = limiter ? await limiter.run(tenantId, signal, run) : await run();
  } catch (err) {
    throw asConnectError(err);
  }
  return create(GetStatsResponseSchema, {
    total: stats.total,
    histogram: stats.histogram.map((b) => ({ start: timestampFromMicros(b.start), count: b.count })),
    top: stats.top.map((t) => ({
      field: t.field,
      values: t.values.map((v) => ({ value: (VALUE_PREFIX[t.field] ?? "") + v.value, count: v.count })),
    })),
  });
}
