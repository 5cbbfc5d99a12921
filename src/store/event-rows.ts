// Mapping between StoredRecord and the columns of `events`. Times travel as
// RFC 3339 text with microseconds in both directions, so nothing is rounded
// through JavaScript's millisecond Date.
import type { JsonObject } from "@bufbuild/protobuf";
import type { ActorTypeName, OutcomeName, SeverityName, StoredRecord } from "../domain/event-record.ts";
import { formatMicros, type Micros, parseMicros } from "../domain/timestamp.ts";
import { sqlLiteral } from "./sql-literal.ts";

export const EVENT_COLUMNS = `tenant_id, sequence, id,
  to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_at,
  to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS received_at,
  action, actor_id, actor_type, actor_name, actor_ip, actor_user_agent, actor_session_id,
  target_type, target_id, target_name, outcome, severity,
  request_id, trace_id, source, location, changes, metadata, message,
  content_hash, hash, prev_hash, erased_at IS NOT NULL AS erased, salt`;

export type EventRow = {
  tenant_id: string;
  sequence: string;
  id: string;
  occurred_at: string;
  received_at: string;
  action: string;
  actor_id: string;
  actor_type: string;
  actor_name: string;
  actor_ip: string;
  actor_user_agent: string;
  actor_session_id: string;
  target_type: string | null;
  target_id: string | null;
  target_name: string | null;
  outcome: string;
  severity: string;
  request_id: string;
  trace_id: string;
  source: string;
  location: string;
  changes: { before: JsonObject | null; after: JsonObject | null } | null;
  metadata: JsonObject | null;
  message: string;
  content_hash: string;
  hash: string;
  prev_hash: string;
  erased: boolean;
  salt: string | null;
};

export function recordFromRow(r: EventRow): StoredRecord {
  return {
    tenantId: r.tenant_id,
    sequence: BigInt(r.sequence),
    id: r.id,
    occurredAt: parseMicros(r.occurred_at),
    receivedAt: parseMicros(r.received_at),
    action: r.action,
    actor: {
      id: r.actor_id,
      type: r.actor_type as ActorTypeName,
      name: r.actor_name,
      ip: r.actor_ip,
      userAgent: r.actor_user_agent,
      sessionId: r.actor_session_id,
    },
    target: r.target_type === null ? null : { type: r.target_type, id: r.target_id ?? "", name: r.target_name ?? "" },
    outcome: r.outcome as OutcomeName,
    severity: r.severity as SeverityName,
    context: { requestId: r.request_id, traceId: r.trace_id, source: r.source, location: r.location },
    changes: r.changes,
    metadata: r.metadata,
    message: r.message,
    contentHash: r.content_hash,
    hash: r.hash,
    prevHash: r.prev_hash,
    ...(r.erased ? { erased: true } : {}),
    ...(r.salt ? { salt: r.salt } : {}),
  };
}

/** The columns written for each event, in COPY order. */
const INSERT_COLUMNS = [
  "tenant_id",
  "sequence",
  "id",
  "occurred_at",
  "received_at",
  "action",
  "actor_id",
  "actor_type",
  "actor_name",
  "actor_ip",
  "actor_user_agent",
  "actor_session_id",
  "target_type",
  "target_id",
  "target_name",
  "outcome",
  "severity",
  "request_id",
  "trace_id",
  "source",
  "location",
  "changes",
  "metadata",
  "message",
  "content_hash",
  "hash",
  "prev_hash",
  "salt",
] as const;

/** The values of one record, in INSERT_COLUMNS order. */
function rowValues(r: StoredRecord): (string | null)[] {
  return [
    r.tenantId,
    r.sequence.toString(),
    r.id,
    formatMicros(r.occurredAt),
    formatMicros(r.receivedAt),
    r.action,
    r.actor.id,
    r.actor.type,
    r.actor.name,
    r.actor.ip,
    r.actor.userAgent,
    r.actor.sessionId,
    r.target?.type ?? null,
    r.target?.id ?? null,
    r.target?.name ?? null,
    r.outcome,
    r.severity,
    r.context.requestId,
    r.context.traceId,
    r.context.source,
    r.context.location,
    r.changes === null ? null : JSON.stringify(r.changes),
    r.metadata === null ? null : JSON.stringify(r.metadata),
    r.message,
    r.contentHash,
    r.hash,
    r.prevHash,
    r.salt || null,
  ];
}

export const COPY_EVENTS_SQL = `COPY events (${INSERT_COLUMNS.join(", ")}) FROM STDIN`;

// COPY's text format: tab-separated, \N for NULL, and backslash escapes for
// the characters that would otherwise end a field or a row.
const SPECIAL = /[\\\t\n\r]/;
function copyField(v: string | null): string {
  if (v === null) return "\\N";
  return SPECIAL.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r")) : v;
}

/** The row of one record in COPY text format, newline included. */
function copyLine(r: StoredRecord): string {
  const values = rowValues(r);
  let line = copyField(values[0] ?? null);
  for (let c = 1; c < values.length; c++) line += "\t" + copyField(values[c] ?? null);
  return line + "\n";
}

/** The rows of `records` in COPY text format. */
export function copyEventsText(records: StoredRecord[]): string {
  let out = "";
  for (const r of records) out += copyLine(r);
  return out;
}

/**
 * Characters per piece of copyEventsChunks. A batch of 5,000 events is about
 * 7 MB of COPY text: made and sent whole, it was that much more memory
 * (once as a string, once as bytes) for every batch.
 */
export const COPY_CHUNK_CHARS = 64 * 1024;

/** The rows of `records` in COPY text format, in pieces of whole rows of about `chunkChars` characters, made as they are read. */
export function* copyEventsChunks(records: StoredRecord[], chunkChars = COPY_CHUNK_CHARS): Generator<string, void, undefined> {
  let out = "";
  for (const r of records) {
    out += copyLine(r);
    if (out.length >= chunkChars) {
      yield out;
      out = "";
    }
  }
  if (out !== "") yield out;
}

const EVENT_IDS_COLUMNS = "event_ids (tenant_id, event_id, content_hash, sequence, received_at)";
export const COPY_EVENT_IDS_SQL = `COPY ${EVENT_IDS_COLUMNS} FROM STDIN`;

/** The idempotency rows of `records`; `digests[i]` is the content digest of `records[i]` (contentDigest, without salt), what a retry is compared with. */
function eventIdsRows(records: StoredRecord[], digests: readonly string[], receivedAt: Micros): string[][] {
  const at = formatMicros(receivedAt);
  return records.map((r, i) => [r.tenantId, r.id, digests[i]!, r.sequence.toString(), at]);
}

/**
 * eventIdsRows in COPY text format, written out directly: bulk ingest makes
 * these for every event, so no array per row (digests, sequences and the
 * time need no escaping).
 */
export function eventIdsText(records: StoredRecord[], digests: readonly string[], receivedAt: Micros): string {
  const at = formatMicros(receivedAt);
  let out = "";
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    out += `${copyField(r.tenantId)}\t${copyField(r.id)}\t${digests[i]}\t${r.sequence}\t${at}\n`;
  }
  return out;
}

// The same rows as one INSERT of literal values, for a batch small enough
// to go in one simple query with the statements around it (event-writer.ts).
const valuesOf = (rows: (string | null)[][]) => rows.map((r) => `(${r.map(sqlLiteral).join(", ")})`).join(",\n");

export function insertEventIdsSql(records: StoredRecord[], digests: readonly string[], receivedAt: Micros): string {
  return `INSERT INTO ${EVENT_IDS_COLUMNS} VALUES ${valuesOf(eventIdsRows(records, digests, receivedAt))}`;
}

export function insertEventsSql(records: StoredRecord[]): string {
  return `INSERT INTO events (${INSERT_COLUMNS.join(", ")}) VALUES ${valuesOf(records.map(rowValues))}`;
}
