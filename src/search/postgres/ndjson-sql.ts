// The NDJSON line of an event built by PostgreSQL, so that an export streams
// lines with `COPY (SELECT ...) TO STDOUT` and Node passes bytes on instead
// of materializing every row as a record and serializing it again
// (docs/PERFORMANCE.md, "Round two, continued").
//
// The line is ndjsonLineOfRecord's (export-format.ts) but for the open
// content (metadata, changes.before, changes.after): PostgreSQL writes jsonb
// text, with a space after every ':' and ',' and its numbers and key order as
// stored, where the record path writes JSON.stringify of what JSON.parse
// made of it. copy-lines.ts finishes the line in one pass over the bytes
// (removes those spaces, and sends any row whose open content JavaScript
// would write otherwise to the record path); compacting in SQL
// (json_strip_nulls) and checking there (regular expressions) cost more
// than the rest of the line together.
//
// Strings are written between quotes as they are when none of the row's
// text columns has a character that JSON escapes, and with to_json
// otherwise: PostgreSQL's escape_json escapes exactly what JSON.stringify
// escapes (", \, and the control characters, with the same short forms and
// lowercase \u00xx), and leaves everything else as it is.

/** A JSON string of a text column. */
type Quote = (col: string) => string;
const raw: Quote = (col) => `('"' || ${col} || '"')`;
const escaped: Quote = (col) => `to_json(${col})::text`;

/**
 * The concatenation of `pieces` (none of them NULL), as a balanced tree of
 * ||: each || copies both sides, so a chain of 40 would copy the growing
 * line 40 times; concat() costs more per argument (an output function
 * call, a copy and a strlen each).
 */
function cat(pieces: string[]): string {
  if (pieces.length === 1) return pieces[0]!;
  const half = Math.ceil(pieces.length / 2);
  return `(${cat(pieces.slice(0, half))} || ${cat(pieces.slice(half))})`;
}

const e = (column: string) => `e.${column}`;

/** `,"key":"value"`, nothing for "" and NULL: proto3 JSON omits defaults (strField). */
function strField(key: string, col: string, q: Quote): string {
  return `CASE WHEN ${col} <> '' THEN ',"${key}":' || ${q(col)} ELSE '' END`;
}

/**
 * `{...}` from fields that each start with a comma (or are empty). For
 * short objects only: substr counts the characters of the whole string.
 */
function object(fields: string[]): string {
  return `('{' || substr(${cat(fields)}, 2) || '}')`;
}

/** A timestamptz as proto3 JSON writes it: UTC, 0, 3 or 6 fraction digits (timestampJson). */
function timestamp(col: string): string {
  const utc = `(${col} AT TIME ZONE 'UTC')`;
  const fmt = (fraction: string) => `to_char(${utc}, 'YYYY-MM-DD"T"HH24:MI:SS${fraction}"Z"')`;
  return `CASE WHEN date_trunc('second', ${utc}) = ${utc} THEN ${fmt("")}
     WHEN date_trunc('milliseconds', ${utc}) = ${utc} THEN ${fmt(".MS")}
     ELSE ${fmt(".US")} END`;
}

/**
 * Whether JavaScript takes the jsonb value for true (`if (r.metadata)`):
 * not SQL NULL (no column, no key), JSON null, false, 0 or "".
 */
function truthy(jsonb: string): string {
  return `CASE jsonb_typeof(${jsonb}) WHEN 'object' THEN true WHEN 'array' THEN true WHEN 'null' THEN false
    ELSE ${jsonb} NOT IN ('false'::jsonb, '0'::jsonb, '""'::jsonb) END`;
}

/** Every text column of a line: when none of them has a character JSON escapes, all are written between quotes as they are. */
const TEXT_COLUMNS = [
  "id",
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
  "request_id",
  "trace_id",
  "source",
  "location",
  "message",
  "tenant_id",
  "hash",
  "prev_hash",
  "content_hash",
  "salt",
];

/**
 * The line, in the order of ndjsonLineOfRecord, in three parts: the
 * envelope before the open content, the open content (`,"changes":{...}`
 * and `,"metadata":...`, each when truthy, as jsonb text) and the rest.
 * Only the middle part needs finishing in Node; the others are copied.
 */
function lineParts(q: Quote): [string, string, string] {
  const changes = e("changes");
  const before = `(${changes} -> 'before')`;
  const after = `(${changes} -> 'after')`;
  const head = [
    // {"event":{ "id" is optional, "occurredAt" always there: the comma goes after id.
    `'{"event":{'`,
    `CASE WHEN ${e("id")} <> '' THEN '"id":' || ${q(e("id"))} || ',' ELSE '' END`,
    `'"occurredAt":"'`,
    timestamp(e("occurred_at")),
    `'"'`,
    strField("action", e("action"), q),
    `',"actor":'`,
    object([
      strField("id", e("actor_id"), q),
      `CASE WHEN ${e("actor_type")} <> 'UNSPECIFIED' THEN ',"type":' || ${q(`'ACTOR_TYPE_' || ${e("actor_type")}`)} ELSE '' END`,
      strField("name", e("actor_name"), q),
      strField("ip", e("actor_ip"), q),
      strField("userAgent", e("actor_user_agent"), q),
      strField("sessionId", e("actor_session_id"), q),
    ]),
    `CASE WHEN ${e("target_type")} IS NOT NULL THEN ',"target":' || ${object([
      strField("type", e("target_type"), q),
      strField("id", e("target_id"), q),
      strField("name", e("target_name"), q),
    ])} ELSE '' END`,
    `',"outcome":"OUTCOME_'`,
    e("outcome"),
    `'","severity":"SEVERITY_'`,
    e("severity"),
    `'","context":'`,
    object([
      strField("requestId", e("request_id"), q),
      strField("traceId", e("trace_id"), q),
      strField("source", e("source"), q),
      strField("location", e("location"), q),
    ]),
  ];
  const open = [
    // changes: {"before":...,"after":...}, each side when truthy.
    `CASE WHEN ${truthy(changes)} THEN ',"changes":{' ||
       CASE WHEN ${truthy(before)} THEN '"before":' || ${before}::text || CASE WHEN ${truthy(after)} THEN ',' ELSE '' END ELSE '' END ||
       CASE WHEN ${truthy(after)} THEN '"after":' || ${after}::text ELSE '' END || '}' ELSE '' END`,
    `CASE WHEN ${truthy(e("metadata"))} THEN ',"metadata":' || ${e("metadata")}::text ELSE '' END`,
  ];
  const tail = [
    strField("message", e("message"), q),
    `'}'`,
    strField("tenantId", e("tenant_id"), q),
    `',"receivedAt":"'`,
    timestamp(e("received_at")),
    `'"'`,
    `CASE WHEN ${e("sequence")} <> 0 THEN ',"sequence":"' || ${e("sequence")} || '"' ELSE '' END`,
    strField("hash", e("hash"), q),
    strField("prevHash", e("prev_hash"), q),
    `CASE WHEN ${e("erased_at")} IS NOT NULL THEN ',"contentHash":' || ${q(e("content_hash"))} || ',"erased":true' ELSE '' END`,
    strField("salt", e("salt"), q),
    `'}'`,
  ];
  return [cat(head), cat(open), cat(tail)];
}

/** A character that JSON escapes (or, [:cntrl:] being wider, might: then to_json is exact all the same). */
const NEEDS_ESCAPE = String.raw`["\\[:cntrl:]]`;

/**
 * The lines of the rows that `pageSql` selects (`SELECT events.* ... ORDER
 * BY ... LIMIT n`), in its order (the subquery scans above it pass its rows
 * on as they come), as three text columns whose concatenation is the line
 * but for the open content, which copy-lines.ts finishes. Built on the
 * page's rows only, after its filter and limit; whether any text column
 * needs escaping is decided once per row (OFFSET 0 keeps PostgreSQL from
 * inlining it into both parts that use it).
 */
export function ndjsonLinesSql(pageSql: string): string {
  const [headRaw, open, tailRaw] = lineParts(raw);
  const [headEscaped, , tailEscaped] = lineParts(escaped);
  return `SELECT CASE WHEN e.needs_escape THEN ${headEscaped} ELSE ${headRaw} END,
       ${open},
       CASE WHEN e.needs_escape THEN ${tailEscaped} ELSE ${tailRaw} END
  FROM (SELECT p.*, concat(${TEXT_COLUMNS.map((c) => `p.${c}`).join(", ")}) ~ '${NEEDS_ESCAPE}' AS needs_escape
          FROM (${pageSql}) p OFFSET 0) e`;
}
