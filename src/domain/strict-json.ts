// Strict google.protobuf.Timestamp values in JSON text, for every way JSON
// reaches the service (API requests through src/server's textDecoder, AMQP
// message bodies in src/services/amqp).
//
// protobuf-es parses a JSON Timestamp with Date.parse, which normalises
// impossible calendar dates instead of refusing them: "2026-02-30T00:00:00Z"
// becomes 2026-03-02, "T24:00:00" the next day, and that other instant would
// be stored and hashed. Once parsed, the message no longer shows what was
// sent, so the check has to see the JSON text: it walks the JSON along the
// message descriptor and checks every Timestamp-typed field with
// timestampFromRfc3339. Anything else that is wrong with the JSON is left to
// protobuf-es, which reports it.
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { RFC3339_HINT, timestampFromRfc3339 } from "./timestamp.ts";

const TIMESTAMP = "google.protobuf.Timestamp";

/** Whether messages of this type can contain a Timestamp (and so are worth walking). */
function holdsTimestamp(desc: DescMessage, visiting: Set<string>, known: Map<string, boolean>): boolean {
  const cached = known.get(desc.typeName);
  if (cached !== undefined) return cached;
  if (desc.typeName === TIMESTAMP) return true;
  // Other well-known types have JSON forms of their own and never hold a Timestamp.
  if (desc.typeName.startsWith("google.protobuf.") || visiting.has(desc.typeName)) return false;
  visiting.add(desc.typeName);
  const result = desc.fields.some((f) => f.message !== undefined && holdsTimestamp(f.message, visiting, known));
  visiting.delete(desc.typeName);
  known.set(desc.typeName, result);
  return result;
}

/** A Timestamp that is not strictly valid: its field path (`events[1].occurred_at`) and why. */
export type TimestampViolation = { field: string; reason: string };

function checkValue(desc: DescMessage, value: unknown, path: string, relevant: (d: DescMessage) => boolean): TimestampViolation | null {
  if (desc.typeName === TIMESTAMP) {
    if (typeof value === "string" && timestampFromRfc3339(value) === null) return { field: path, reason: RFC3339_HINT };
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || !relevant(desc)) return null;
  return checkMessage(desc, value as Record<string, unknown>, path, relevant);
}

function checkField(
  f: DescField & { message: DescMessage },
  value: unknown,
  at: string,
  relevant: (d: DescMessage) => boolean,
): TimestampViolation | null {
  if (f.fieldKind === "list") {
    if (!Array.isArray(value)) return null;
    for (let i = 0; i < value.length; i++) {
      const v = checkValue(f.message, value[i], `${at}[${i}]`, relevant);
      if (v) return v;
    }
    return null;
  }
  if (f.fieldKind === "map") {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
    for (const [k, item] of Object.entries(value)) {
      const v = checkValue(f.message, item, `${at}[${JSON.stringify(k)}]`, relevant);
      if (v) return v;
    }
    return null;
  }
  return checkValue(f.message, value, at, relevant);
}

function checkMessage(
  desc: DescMessage,
  json: Record<string, unknown>,
  path: string,
  relevant: (d: DescMessage) => boolean,
): TimestampViolation | null {
  for (const f of desc.fields) {
    if (!f.message || !relevant(f.message)) continue;
    const at = path ? `${path}.${f.name}` : f.name;
    // protobuf-es accepts the JSON name and the proto name.
    for (const key of f.jsonName === f.name ? [f.name] : [f.jsonName, f.name]) {
      if (!Object.hasOwn(json, key)) continue;
      const v = checkField(f as DescField & { message: DescMessage }, json[key], at, relevant);
      if (v) return v;
    }
  }
  return null;
}

/** The first Timestamp of `json` (a request of type `desc`) that is not strictly valid, or null. */
export function timestampJsonViolation(desc: DescMessage, json: unknown): TimestampViolation | null {
  const known = new Map<string, boolean>();
  const relevant = (d: DescMessage) => holdsTimestamp(d, new Set(), known);
  return checkValue(desc, json, "", relevant);
}

// In JSON without escapes, a string's value is its text between quotes, and
// a quote followed by a digit opens a string: so when every string that
// could be a Timestamp (it starts like one) is a strictly valid time, no
// Timestamp field can hold a bad one, and the walk is not needed. That saves
// parsing the text twice on the common path: on a 1,000-event Append the
// walk added about 7 ms to protobuf-es's 17 ms; the scan's cost was within
// the noise of that measurement.
const TIME_LIKE = /"(\d{4}-\d\d-\d\dT[^"]*)"/g;

function allTimeLikeStringsValid(text: string): boolean {
  if (text.includes("\\")) return false;
  for (const m of text.matchAll(TIME_LIKE)) if (timestampFromRfc3339(m[1]!) === null) return false;
  return true;
}

/** Whether messages of type `desc` can hold a Timestamp anywhere (only those are worth checking). */
export function canHoldTimestamp(desc: DescMessage): boolean {
  return holdsTimestamp(desc, new Set(), new Map());
}

/**
 * The first Timestamp of `text` (JSON of a message of type `desc`) that is not
 * strictly valid, or null (also when the text is not JSON: protobuf-es
 * reports that).
 */
export function strictTimestampViolation(desc: DescMessage, text: string): TimestampViolation | null {
  if (allTimeLikeStringsValid(text)) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  return timestampJsonViolation(desc, json);
}
