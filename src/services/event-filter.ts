// A request's EventFilter and sort order as the query model both search
// backends translate (src/domain/event-query.ts), bounded by the query
// complexity limits (src/domain/query-limits.ts). Shared by SearchEvents,
// ExportEvents, GetStats and GET /v1/export.
import { type EventFilter, SortOrder } from "../../gen/auditlog/v1/query_pb.js";
import { boundedQuery, type EventQuery, queryFromFilter, type SortDirection } from "../domain/event-query.ts";
import { parseQueryString } from "../domain/query-string.ts";
import { queryLimitProblem } from "../domain/query-limits.ts";
import { fieldError } from "../platform/error-details.ts";
import { asConnectError } from "./errors.ts";

/** The EventFilter (structured fields and the `query` string) as one EventQuery; INVALID_ARGUMENT on a syntax error. */
export function queryOf(filter: EventFilter | undefined): EventQuery {
  try {
    const q = queryFromFilter(filter);
    const fieldsProblem = queryLimitProblem(q.conditions);
    if (fieldsProblem) {
      const field = fieldsProblem.field ? `filter.${fieldsProblem.field}` : "filter";
      throw fieldError(field, fieldsProblem.message);
    }
    if (filter?.query) {
      q.conditions.push(...parseQueryString(filter.query));
      const problem = queryLimitProblem(q.conditions);
      if (problem) throw fieldError("filter.query", problem.message);
    }
    return boundedQuery(q);
  } catch (err) {
    // Called outside the RPC interceptor too (GET /v1/export).
    throw asConnectError(err);
  }
}

export function directionOf(order: SortOrder): SortDirection {
  return order === SortOrder.ASCENDING ? "asc" : "desc";
}
