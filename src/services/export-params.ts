// GET /v1/export's query parameters as an ExportEventsRequest: one parameter
// per EventFilter field, named by the field in the singular (see
// export-http.ts for the list). Only the shape is checked here; the request is
// then validated with the same rules as the RPC.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectError } from "@connectrpc/connect";
import { ActorType, Outcome, Severity } from "../../gen/auditlog/v1/event_pb.js";
import { type EventFilterSchema, type ExportEventsRequestSchema, ExportFormat, SortOrder } from "../../gen/auditlog/v1/query_pb.js";
import { RFC3339_HINT, timestampFromRfc3339 } from "../domain/timestamp.ts";
import { fieldError } from "../platform/error-details.ts";

type FilterInit = MessageInitShape<typeof EventFilterSchema>;
type RequestInit = MessageInitShape<typeof ExportEventsRequestSchema>;

const REPEATED_STRINGS = {
  id: "ids",
  action: "actions",
  actor_id: "actorIds",
  actor_ip: "actorIps",
  session_id: "sessionIds",
  target_type: "targetTypes",
  target_id: "targetIds",
  request_id: "requestIds",
  trace_id: "traceIds",
  source: "sources",
  location: "locations",
} as const satisfies Record<string, keyof FilterInit>;

type EnumSpec = { values: Record<string, string | number>; prefix: string };
const ACTOR_TYPE: EnumSpec = { values: ActorType, prefix: "ACTOR_TYPE_" };
const OUTCOME: EnumSpec = { values: Outcome, prefix: "OUTCOME_" };
const SEVERITY: EnumSpec = { values: Severity, prefix: "SEVERITY_" };

const REPEATED_ENUMS = {
  actor_type: ["actorTypes", ACTOR_TYPE],
  outcome: ["outcomes", OUTCOME],
  severity: ["severities", SEVERITY],
} as const satisfies Record<string, readonly [keyof FilterInit, EnumSpec]>;

const SINGLES = new Set([
  "format",
  "order",
  "limit",
  "min_position",
  "min_severity",
  "occurred_after",
  "occurred_before",
  "text",
  "query",
  "csv_keep_formulas",
  "manifest",
]);

const KNOWN_TEXT = [...SINGLES, ...Object.keys(REPEATED_STRINGS), ...Object.keys(REPEATED_ENUMS), "metadata.<key>"].join(", ");

/** INVALID_ARGUMENT naming the query parameter (google.rpc.BadRequest, as over the RPCs). */
export function badParam(param: string, reason: string): ConnectError {
  return fieldError(param, reason);
}

function enumValue(param: string, spec: EnumSpec, raw: string): number {
  const up = raw.trim().toUpperCase();
  const name = up.startsWith(spec.prefix) ? up.slice(spec.prefix.length) : up;
  const v = Object.hasOwn(spec.values, name) ? spec.values[name] : undefined;
  if (typeof v !== "number") {
    const names = Object.keys(spec.values).filter((k) => typeof spec.values[k] === "number");
    throw badParam(param, `unknown value ${JSON.stringify(raw)} (one of ${names.map((n) => spec.prefix + n).join(", ")})`);
  }
  return v;
}

function uint64(param: string, raw: string): bigint {
  if (!/^\d{1,20}$/.test(raw) || BigInt(raw) > 0xffff_ffff_ffff_ffffn)
    throw badParam(param, `not a non-negative integer: ${JSON.stringify(raw)}`);
  return BigInt(raw);
}

function boolean(param: string, raw: string): boolean {
  const b = raw.toLowerCase();
  if (b !== "true" && b !== "false") throw badParam(param, `must be true or false, not ${JSON.stringify(raw)}`);
  return b === "true";
}

function timestamp(param: string, raw: string) {
  // Strict: fromJson would move an impossible date (2026-02-30) to another day.
  const ts = timestampFromRfc3339(raw);
  if (!ts) throw badParam(param, `${RFC3339_HINT}, not ${JSON.stringify(raw)}`);
  return create(TimestampSchema, ts);
}

/** The query parameters as an ExportEventsRequest (not yet validated against the contract). */
export function requestFromParams(params: URLSearchParams): RequestInit {
  const filter: FilterInit = {};
  const req: RequestInit = { filter };
  const seen = new Set<string>();
  const metadata = new Map<string, string[]>();
  for (const [name, raw] of params) {
    if (name.startsWith("metadata.")) {
      const key = name.slice("metadata.".length);
      const values = metadata.get(key) ?? [];
      if (raw !== "") values.push(raw);
      metadata.set(key, values);
      continue;
    }
    if (Object.hasOwn(REPEATED_STRINGS, name)) {
      const field = REPEATED_STRINGS[name as keyof typeof REPEATED_STRINGS];
      ((filter[field] ??= []) as string[]).push(raw);
      continue;
    }
    if (Object.hasOwn(REPEATED_ENUMS, name)) {
      const [field, spec] = REPEATED_ENUMS[name as keyof typeof REPEATED_ENUMS];
      ((filter[field] ??= []) as number[]).push(enumValue(name, spec, raw));
      continue;
    }
    if (!SINGLES.has(name)) throw badParam(name, `unknown parameter (known: ${KNOWN_TEXT})`);
    if (seen.has(name)) throw badParam(name, "given more than once");
    seen.add(name);
    switch (name) {
      case "format": {
        const f = raw.toLowerCase();
        if (f !== "csv" && f !== "ndjson") throw badParam("format", `must be csv or ndjson, not ${JSON.stringify(raw)}`);
        req.format = f === "csv" ? ExportFormat.CSV : ExportFormat.NDJSON;
        break;
      }
      case "order": {
        const o = raw.toLowerCase();
        if (o !== "asc" && o !== "desc") throw badParam("order", `must be asc or desc, not ${JSON.stringify(raw)}`);
        req.order = o === "asc" ? SortOrder.ASCENDING : SortOrder.DESCENDING;
        break;
      }
      case "limit":
        req.limit = uint64(name, raw);
        break;
      case "min_position":
        req.minPosition = uint64(name, raw);
        break;
      case "min_severity":
        filter.minSeverity = enumValue(name, SEVERITY, raw);
        break;
      case "occurred_after":
        filter.occurredAfter = timestamp(name, raw);
        break;
      case "occurred_before":
        filter.occurredBefore = timestamp(name, raw);
        break;
      case "text":
        filter.text = raw;
        break;
      case "query":
        filter.query = raw;
        break;
      case "csv_keep_formulas":
        req.csvKeepFormulas = boolean(name, raw);
        break;
      case "manifest":
        req.manifest = boolean(name, raw);
        break;
    }
  }
  filter.metadata = [...metadata].map(([key, values]) => ({ key, values }));
  return req;
}
