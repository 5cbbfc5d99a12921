// An event as text for people: its JSON (the API's own JSON form), a curl
// command that fetches it (with $KEY, never the real credential), enum names.
import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ActorType, Outcome, Severity, type StoredEvent, StoredEventSchema } from "../../gen/auditlog/v1/event_pb.js";

export function eventJson(ev: StoredEvent): JsonValue {
  return toJson(StoredEventSchema, ev);
}

export function formatTime(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toISOString() : "";
}

export const outcomeName = (v: Outcome) => Outcome[v] ?? String(v);
export const severityName = (v: Severity) => Severity[v] ?? String(v);
export const actorTypeName = (v: ActorType) => ActorType[v] ?? String(v);

/** A shell-quoted argument. */
function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function curlForEvent(origin: string, id: string, tenantHeader: string): string {
  const lines = [
    `curl -sS ${sq(`${origin}/auditlog.v1.QueryService/GetEvent`)}`,
    `  -H 'Content-Type: application/json'`,
    `  -H "Authorization: Bearer $KEY"`,
    ...(tenantHeader ? [`  -H ${sq(`x-auditlog-tenant: ${tenantHeader}`)}`] : []),
    `  -d ${sq(JSON.stringify({ id }))}`,
  ];
  return lines.join(" \\\n");
}
