// The search as a person sets it up, kept in the page's URL (?q=...&range=...)
// so that a link shares it; never the credential. Turned into an EventFilter
// for the RPCs and into /v1/export's query parameters for downloads.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ActorType, Outcome, Severity } from "../../gen/auditlog/v1/event_pb.js";
import { type EventFilterSchema, SortOrder } from "../../gen/auditlog/v1/query_pb.js";

export const RANGE_PRESETS = [
  { key: "15m", label: "Last 15 minutes", ms: 15 * 60_000 },
  { key: "1h", label: "Last hour", ms: 3_600_000 },
  { key: "24h", label: "Last 24 hours", ms: 86_400_000 },
  { key: "7d", label: "Last 7 days", ms: 7 * 86_400_000 },
  { key: "30d", label: "Last 30 days", ms: 30 * 86_400_000 },
  { key: "all", label: "All time", ms: 0 },
  { key: "custom", label: "Custom range", ms: 0 },
] as const;

export type RangeKey = (typeof RANGE_PRESETS)[number]["key"];

export type QueryState = {
  /** The query string (docs/QUERY_SYNTAX.md). */
  q: string;
  /** Comma-separated lists of exact values (an action may end in .*). */
  action: string;
  actorId: string;
  targetType: string;
  targetId: string;
  source: string;
  /** Enum names without prefix: SUCCESS, WARNING, USER. */
  outcome: string[];
  severity: string[];
  actorType: string[];
  range: RangeKey;
  /** datetime-local values (local time) for a custom range. */
  from: string;
  to: string;
  order: "desc" | "asc";
  pageSize: number;
};

export const OUTCOMES = ["SUCCESS", "FAILURE", "DENIED", "UNKNOWN"];
export const SEVERITIES = ["INFO", "WARNING", "ERROR", "CRITICAL"];
export const ACTOR_TYPES = ["USER", "SERVICE", "SYSTEM"];
export const PAGE_SIZES = [25, 50, 100, 250];

export const EMPTY_QUERY: QueryState = {
  q: "",
  action: "",
  actorId: "",
  targetType: "",
  targetId: "",
  source: "",
  outcome: [],
  severity: [],
  actorType: [],
  range: "24h",
  from: "",
  to: "",
  order: "desc",
  pageSize: 100,
};

const TEXT_PARAMS = ["q", "action", "actorId", "targetType", "targetId", "source", "from", "to"] as const;
const LIST_PARAMS = ["outcome", "severity", "actorType"] as const;

export function queryFromParams(p: URLSearchParams): QueryState {
  const s: QueryState = { ...EMPTY_QUERY, outcome: [], severity: [], actorType: [] };
  for (const k of TEXT_PARAMS) s[k] = p.get(k) ?? "";
  const allowed: Record<(typeof LIST_PARAMS)[number], string[]> = { outcome: OUTCOMES, severity: SEVERITIES, actorType: ACTOR_TYPES };
  for (const k of LIST_PARAMS) s[k] = p.getAll(k).filter((v) => allowed[k].includes(v));
  const range = p.get("range");
  if (range && RANGE_PRESETS.some((r) => r.key === range)) s.range = range as RangeKey;
  if (p.get("order") === "asc") s.order = "asc";
  const size = Number(p.get("size"));
  if (PAGE_SIZES.includes(size)) s.pageSize = size;
  return s;
}

/** Only what differs from the defaults, so that links stay short. */
export function queryToParams(s: QueryState): URLSearchParams {
  const p = new URLSearchParams();
  for (const k of TEXT_PARAMS) if (s[k]) p.set(k, s[k]);
  for (const k of LIST_PARAMS) for (const v of s[k]) p.append(k, v);
  if (s.range !== EMPTY_QUERY.range) p.set("range", s.range);
  if (s.order !== EMPTY_QUERY.order) p.set("order", s.order);
  if (s.pageSize !== EMPTY_QUERY.pageSize) p.set("size", String(s.pageSize));
  return p;
}

export function splitList(text: string): string[] {
  return text
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v !== "");
}

/** The time bounds the range stands for, at `now`. */
export function timeBounds(s: QueryState, now: number): { after?: Date; before?: Date } {
  if (s.range === "custom") {
    const after = s.from ? new Date(s.from) : undefined;
    const before = s.to ? new Date(s.to) : undefined;
    return {
      ...(after && !Number.isNaN(after.getTime()) ? { after } : {}),
      ...(before && !Number.isNaN(before.getTime()) ? { before } : {}),
    };
  }
  const preset = RANGE_PRESETS.find((r) => r.key === s.range);
  return preset && preset.ms > 0 ? { after: new Date(now - preset.ms) } : {};
}

type FilterInit = MessageInitShape<typeof EventFilterSchema>;

export function toEventFilter(s: QueryState, now = Date.now()): FilterInit {
  const { after, before } = timeBounds(s, now);
  return {
    query: s.q.trim(),
    actions: splitList(s.action),
    actorIds: splitList(s.actorId),
    targetTypes: splitList(s.targetType),
    targetIds: splitList(s.targetId),
    sources: splitList(s.source),
    outcomes: s.outcome.map((v) => Outcome[v as keyof typeof Outcome]),
    severities: s.severity.map((v) => Severity[v as keyof typeof Severity]),
    actorTypes: s.actorType.map((v) => ActorType[v as keyof typeof ActorType]),
    ...(after ? { occurredAfter: timestampFromDate(after) } : {}),
    ...(before ? { occurredBefore: timestampFromDate(before) } : {}),
  };
}

export function sortOrder(s: QueryState): SortOrder {
  return s.order === "asc" ? SortOrder.ASCENDING : SortOrder.DESCENDING;
}

/** GET /v1/export's parameters for the same search (src/services/export-params.ts). */
export function toExportParams(s: QueryState, format: "csv" | "ndjson", now = Date.now()): URLSearchParams {
  const p = new URLSearchParams({ format, order: s.order });
  if (s.q.trim()) p.set("query", s.q.trim());
  const lists: [string, string][] = [
    ["action", s.action],
    ["actor_id", s.actorId],
    ["target_type", s.targetType],
    ["target_id", s.targetId],
    ["source", s.source],
  ];
  for (const [name, text] of lists) for (const v of splitList(text)) p.append(name, v);
  for (const v of s.outcome) p.append("outcome", v);
  for (const v of s.severity) p.append("severity", v);
  for (const v of s.actorType) p.append("actor_type", v);
  const { after, before } = timeBounds(s, now);
  if (after) p.set("occurred_after", after.toISOString());
  if (before) p.set("occurred_before", before.toISOString());
  return p;
}
