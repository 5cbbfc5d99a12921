// The two export file formats, one event at a time.
//
// NDJSON: one StoredEvent per line in proto3 JSON (the JSON the Connect API
// answers with: lowerCamelCase keys, enums by name, 64-bit integers as
// strings, fields at their default value omitted), each line ending in "\n".
//
// CSV (RFC 4180): a fixed header row (CSV_COLUMNS), then one row per event,
// every line ending in CRLF. A cell holds exactly what the NDJSON line holds
// at the same place: enums by their proto JSON names (OUTCOME_SUCCESS),
// times as proto3 JSON timestamps (RFC 3339, UTC, 0/3/6/9 fraction digits),
// `sequence` in decimal, open content (metadata, changes.before,
// changes.after) as compact JSON text. A field that NDJSON omits (not set or
// at its default, e.g. no target, ACTOR_TYPE_UNSPECIFIED) is an empty cell.
// Cells are quoted only when they contain `"`, `,`, CR or LF; quotes inside
// are doubled.
//
// Spreadsheet formula injection (OWASP "CSV Injection"): auditors open these
// files in spreadsheets, and producers control most cells, so by default a
// cell that starts with =, +, -, @, tab or CR gets a single quote in front
// and is always quoted. Every cell, not only text columns: no column can
// legitimately start with one of these (`sequence` is never negative,
// times start with a digit, open content with `{`), so there is no numeric
// case to spare. A cell that already starts with ' gets one too, which makes
// the change reversible: remove one leading ' from any cell that has one to
// get the stored, hash-chained value back. `keepFormulas` turns this off for
// consumers that want the stored bytes and do not open the file in a
// spreadsheet. NDJSON is never altered.
import { toJsonString } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { ActorType, Outcome, Severity, type StoredEvent, StoredEventSchema } from "../../gen/auditlog/v1/event_pb.js";
import type { StoredRecord } from "./event-record.ts";
import { timestampFromMicros } from "./timestamp.ts";

/** One NDJSON line: the event in proto3 JSON plus "\n". The definition that ndjsonLineOfRecord is tested against. */
export function ndjsonLine(e: StoredEvent): string {
  return toJsonString(StoredEventSchema, e) + "\n";
}

const str = JSON.stringify;

/** `,"key":"value"` for a string field, nothing for "" (proto3 JSON omits defaults). */
function strField(key: string, v: string): string {
  return v === "" ? "" : `,"${key}":${str(v)}`;
}

/** `{...}` from fields made by strField (each starts with a comma). */
function object(fields: string): string {
  return `{${fields.slice(1)}}`;
}

/**
 * ndjsonLine(storedEventFromRecord(r)), written directly from the record.
 * Exports run this for every row: building the message and serializing it by
 * reflection cost about 14 µs per event, this about a quarter of that.
 * test/unit/export-format.test.ts checks both give the same bytes.
 */
export function ndjsonLineOfRecord(r: StoredRecord): string {
  const a = r.actor;
  const c = r.context;
  let ev = strField("id", r.id) + `,"occurredAt":"${timestampJson(timestampFromMicros(r.occurredAt))}"` + strField("action", r.action);
  ev +=
    `,"actor":` +
    object(
      strField("id", a.id) +
        strField("type", a.type === "UNSPECIFIED" ? "" : `ACTOR_TYPE_${a.type}`) +
        strField("name", a.name) +
        strField("ip", a.ip) +
        strField("userAgent", a.userAgent) +
        strField("sessionId", a.sessionId),
    );
  if (r.target)
    ev += `,"target":` + object(strField("type", r.target.type) + strField("id", r.target.id) + strField("name", r.target.name));
  ev += `,"outcome":"OUTCOME_${r.outcome}","severity":"SEVERITY_${r.severity}"`;
  ev +=
    `,"context":` +
    object(
      strField("requestId", c.requestId) + strField("traceId", c.traceId) + strField("source", c.source) + strField("location", c.location),
    );
  if (r.changes) {
    ev +=
      `,"changes":` +
      object((r.changes.before ? `,"before":${str(r.changes.before)}` : "") + (r.changes.after ? `,"after":${str(r.changes.after)}` : ""));
  }
  if (r.metadata) ev += `,"metadata":${str(r.metadata)}`;
  ev += strField("message", r.message);
  return (
    `{"event":${object(ev)}` +
    strField("tenantId", r.tenantId) +
    `,"receivedAt":"${timestampJson(timestampFromMicros(r.receivedAt))}"` +
    (r.sequence === 0n ? "" : `,"sequence":"${r.sequence}"`) +
    strField("hash", r.hash) +
    strField("prevHash", r.prevHash) +
    (r.erased ? `,"contentHash":${str(r.contentHash)},"erased":true` : "") +
    (r.salt ? `,"salt":${str(r.salt)}` : "") +
    "}\n"
  );
}

/**
 * The CSV columns, in order. Every field of StoredEvent has one column
 * (dotted names for nested envelope fields, proto field names in snake_case)
 * but `content_hash`, `erased` and `salt`, which serve verification and
 * only NDJSON (the verifiable format) carries; in CSV an erased event is a
 * row with its personal columns empty.
 */
export const CSV_COLUMNS = [
  "tenant_id",
  "id",
  "sequence",
  "occurred_at",
  "received_at",
  "action",
  "actor.id",
  "actor.type",
  "actor.name",
  "actor.ip",
  "actor.user_agent",
  "actor.session_id",
  "target.type",
  "target.id",
  "target.name",
  "outcome",
  "severity",
  "context.request_id",
  "context.trace_id",
  "context.source",
  "context.location",
  "message",
  "metadata",
  "changes.before",
  "changes.after",
  "hash",
  "prev_hash",
] as const;

export type CsvColumn = (typeof CSV_COLUMNS)[number];

const CRLF = "\r\n";
const NEEDS_QUOTES = /[",\r\n]/;

/** One RFC 4180 field: quoted (with doubled quotes) only when it has to be. */
export function csvField(v: string): string {
  return NEEDS_QUOTES.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

/** Whether a spreadsheet could take the cell for a formula, or it starts with the ' that marks a neutralised one. */
function formulaLeading(v: string): boolean {
  switch (v.charCodeAt(0)) {
    case 0x3d: // =
    case 0x2b: // +
    case 0x2d: // -
    case 0x40: // @
    case 0x09: // tab
    case 0x0d: // CR
    case 0x27: // '
      return true;
    default:
      return false;
  }
}

/**
 * csvField, with a formula-leading cell neutralised: prefixed with ' and
 * quoted (OWASP's rule; see the note at the top of this file).
 */
export function csvSafeField(v: string): string {
  return formulaLeading(v) ? `"'${v.replaceAll('"', '""')}"` : csvField(v);
}

export type CsvOptions = {
  /** Write formula-leading cells as stored instead of neutralising them. */
  keepFormulas?: boolean;
};

/** The header row, CRLF-terminated. */
export function csvHeader(): string {
  return CSV_COLUMNS.join(",") + CRLF;
}

/** A Timestamp exactly as proto3 JSON writes it (what @bufbuild/protobuf's toJson produces). */
export function timestampJson(ts: Pick<Timestamp, "seconds" | "nanos"> | undefined): string {
  if (!ts) return "";
  const nanos = ts.nanos;
  let z = "Z";
  if (nanos > 0) {
    const digits = String(nanos + 1_000_000_000).slice(1);
    z = digits.endsWith("000000") ? `.${digits.slice(0, 3)}Z` : digits.endsWith("000") ? `.${digits.slice(0, 6)}Z` : `.${digits}Z`;
  }
  return new Date(Number(ts.seconds) * 1000).toISOString().replace(".000Z", z);
}

/** An enum value as proto3 JSON writes it: its full name, "" for the default (omitted), the number if unknown. */
function enumJson(names: Record<number, string>, prefix: string, v: number): string {
  if (v === 0) return "";
  const name = names[v];
  return name === undefined ? String(v) : prefix + name;
}

function jsonText(v: unknown): string {
  return v === undefined ? "" : JSON.stringify(v);
}

/** One CSV row for the event, CRLF-terminated, in the order of CSV_COLUMNS. */
export function csvRow(e: StoredEvent, opts: CsvOptions = {}): string {
  const ev = e.event;
  const a = ev?.actor;
  const t = ev?.target;
  const c = ev?.context;
  const cells: string[] = [
    e.tenantId,
    ev?.id ?? "",
    e.sequence === 0n ? "" : e.sequence.toString(),
    timestampJson(ev?.occurredAt),
    timestampJson(e.receivedAt),
    ev?.action ?? "",
    a?.id ?? "",
    enumJson(ActorType, "ACTOR_TYPE_", a?.type ?? 0),
    a?.name ?? "",
    a?.ip ?? "",
    a?.userAgent ?? "",
    a?.sessionId ?? "",
    t?.type ?? "",
    t?.id ?? "",
    t?.name ?? "",
    enumJson(Outcome, "OUTCOME_", ev?.outcome ?? 0),
    enumJson(Severity, "SEVERITY_", ev?.severity ?? 0),
    c?.requestId ?? "",
    c?.traceId ?? "",
    c?.source ?? "",
    c?.location ?? "",
    ev?.message ?? "",
    jsonText(ev?.metadata),
    jsonText(ev?.changes?.before),
    jsonText(ev?.changes?.after),
    e.hash,
    e.prevHash,
  ];
  const field = opts.keepFormulas ? csvField : csvSafeField;
  let line = field(cells[0]!);
  for (let i = 1; i < cells.length; i++) line += "," + field(cells[i]!);
  return line + CRLF;
}
