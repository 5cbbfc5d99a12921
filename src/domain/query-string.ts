// The human query syntax (EventFilter.query), parsed into the same
// conditions as the structured filter; docs/QUERY_SYNTAX.md is its manual.
//
//   action:customer.* actor.id:u1 actor.id:u2 severity>=WARNING "card declined" -test
//
// Terms are separated by whitespace and combine with AND, except that
// repeated `field:value` terms for one field combine with OR (like the
// repeated fields of EventFilter). Every error is a QuerySyntaxError with the
// 0-based offset (in UTF-16 code units) of the offending character.
import { type Condition, severitiesAtLeast, TERM_FIELDS, type TermField, words } from "./event-query.ts";
import { type ActorTypeName, type OutcomeName, SEVERITY_ORDER, type SeverityName } from "./event-record.ts";
import { QUERY_LIMITS } from "./query-limits.ts";
import { MAX_MICROS, type Micros, MIN_MICROS } from "./timestamp.ts";

export class QuerySyntaxError extends Error {
  /** 0-based offset of the problem in the query text. */
  readonly position: number;

  constructor(problem: string, position: number, hint = "") {
    super(`query: ${problem} at position ${position}${hint ? `; ${hint}` : ""}`);
    this.name = "QuerySyntaxError";
    this.position = position;
  }
}

const ALIASES = new Map<string, TermField>([
  ["source", "context.source"],
  ["location", "context.location"],
  ["request_id", "context.request_id"],
  ["trace_id", "context.trace_id"],
]);

/** Field names (lowercase) and aliases to the term field they mean. */
const TERM_FIELD_NAMES = new Map<string, TermField>([...TERM_FIELDS.map((f) => [f, f] as const), ...ALIASES]);

const TIME_FIELD = "occurred_at";
const METADATA_PREFIX = "metadata.";

export const KNOWN_FIELDS_TEXT = [...TERM_FIELDS, ...ALIASES.keys(), TIME_FIELD, "metadata.<key>"].join(", ");

const ENUMS: Partial<Record<TermField, { prefix: string; names: readonly string[] }>> = {
  "actor.type": { prefix: "ACTOR_TYPE_", names: ["UNSPECIFIED", "USER", "SERVICE", "SYSTEM"] satisfies ActorTypeName[] },
  outcome: { prefix: "OUTCOME_", names: ["SUCCESS", "FAILURE", "DENIED", "UNKNOWN"] satisfies OutcomeName[] },
  severity: { prefix: "SEVERITY_", names: SEVERITY_ORDER },
};

/** Same rule as EventFilter.actions. */
const ACTION_PATTERN = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.\*)?$/;

type Op = ":" | ">=" | ">" | "<=" | "<";

const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);
/** Characters that end a field name. */
const isNameEnd = (c: string | undefined) => c === undefined || isSpace(c) || c === ":" || c === "<" || c === ">" || c === "=" || c === '"';
const LOOKS_LIKE_FIELD = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/;

type Value = { text: string; quoted: boolean; position: number };

/** Parses a query in the human syntax. Throws QuerySyntaxError. */
export function parseQueryString(query: string): Condition[] {
  return new Parser(query).parse();
}

class Parser {
  private readonly s: string;
  private i = 0;
  private readonly out: Condition[] = [];
  /** Conditions that later `field:value` terms of the same field OR into. */
  private readonly groups = new Map<string, Condition>();
  private readonly metadataExists = new Set<string>();
  private time: { kind: "time"; from: Micros | null; to: Micros | null } | null = null;

  constructor(s: string) {
    this.s = s;
  }

  parse(): Condition[] {
    const s = this.s;
    const { maxQueryLength, maxQueryTerms } = QUERY_LIMITS;
    if (s.length > maxQueryLength) {
      throw new QuerySyntaxError(
        `longer than ${maxQueryLength} characters (${s.length})`,
        maxQueryLength,
        `at most ${maxQueryLength} characters`,
      );
    }
    let terms = 0;
    for (;;) {
      while (isSpace(s[this.i])) this.i++;
      if (this.i >= s.length) return this.out;
      if (++terms > maxQueryTerms) {
        throw new QuerySyntaxError(`more than ${maxQueryTerms} terms`, this.i, `at most ${maxQueryTerms} terms per query`);
      }
      this.term();
      if (this.i < s.length && !isSpace(s[this.i])) {
        throw new QuerySyntaxError(`expected a space after the term, found "${s[this.i]}"`, this.i);
      }
    }
  }

  private term(): void {
    const s = this.s;
    const start = this.i;
    let negate = false;
    if (s[this.i] === "-" && this.i + 1 < s.length && !isSpace(s[this.i + 1])) {
      negate = true;
      this.i++;
    }
    if (s[this.i] === '"') {
      const v = this.quoted();
      this.text(v.text, negate);
      return;
    }
    // A field name followed by an operator makes a field term.
    let j = this.i;
    while (!isNameEnd(s[j])) j++;
    const name = s.slice(this.i, j);
    const opChar = s[j];
    const isOp = opChar === ":" || opChar === "<" || opChar === ">";
    const lower = name.toLowerCase();
    const known = TERM_FIELD_NAMES.has(lower) || lower === TIME_FIELD || lower === "metadata" || lower.startsWith(METADATA_PREFIX);
    if (name && ((isOp && (known || LOOKS_LIKE_FIELD.test(name))) || (opChar === "=" && known))) {
      if (negate) {
        throw new QuerySyntaxError(
          `negation is not supported for field terms ("-${name}${opChar}...")`,
          start,
          'only free text can be negated (-word, -"phrase")',
        );
      }
      this.i = j;
      this.fieldTerm(name, start);
      return;
    }
    // A bare word.
    while (this.i < s.length && !isSpace(s[this.i])) {
      if (s[this.i] === '"') throw new QuerySyntaxError("unexpected quote inside a word", this.i, "put the whole phrase in quotes");
      this.i++;
    }
    this.text(s.slice(negate ? start + 1 : start, this.i), negate);
  }

  private text(t: string, negate: boolean): void {
    const w = words(t);
    if (w.length) this.out.push({ kind: "text", words: w, negate });
  }

  /** A "quoted string" at this.i, with \" and \\ escapes. */
  private quoted(): Value {
    const s = this.s;
    const open = this.i;
    let text = "";
    let j = open + 1;
    for (;;) {
      if (j >= s.length) throw new QuerySyntaxError("unterminated quote", open);
      const c = s[j]!;
      if (c === '"') break;
      if (c === "\\" && (s[j + 1] === '"' || s[j + 1] === "\\")) {
        text += s[j + 1];
        j += 2;
        continue;
      }
      text += c;
      j++;
    }
    this.i = j + 1;
    return { text, quoted: true, position: open };
  }

  /** The value after the operator; a quoted empty value ("") only where `emptyOk`. */
  private value(field: string, emptyOk = false): Value {
    const s = this.s;
    const position = this.i;
    if (s[this.i] === '"') {
      const v = this.quoted();
      if (!v.text && !emptyOk) throw new QuerySyntaxError(`empty value for "${field}"`, position);
      return v;
    }
    while (this.i < s.length && !isSpace(s[this.i])) {
      if (s[this.i] === '"') throw new QuerySyntaxError("unexpected quote inside a value", this.i, "quote the whole value");
      this.i++;
    }
    const text = s.slice(position, this.i);
    if (!text) throw new QuerySyntaxError(`empty value for "${field}"`, position);
    return { text, quoted: false, position };
  }

  private fieldTerm(name: string, start: number): void {
    const s = this.s;
    const opPos = this.i;
    let op: Op;
    if (s[this.i] === "=") {
      throw new QuerySyntaxError(`unsupported operator "="`, opPos, `use "${name}:value"`);
    } else if (s[this.i] === ":") {
      op = ":";
    } else if (s[this.i + 1] === "=") {
      op = s[this.i] === ">" ? ">=" : "<=";
    } else {
      op = s[this.i] === ">" ? ">" : "<";
    }
    this.i += op.length;
    const lower = name.toLowerCase();

    if (lower === "metadata" || lower.startsWith(METADATA_PREFIX)) {
      const key = name.slice(METADATA_PREFIX.length);
      const path = key.split(".");
      if (lower === "metadata" || path.some((p) => p === "")) {
        throw new QuerySyntaxError(
          `invalid metadata key "${key}"`,
          start,
          "write metadata.<key> or metadata.<key>.<subkey>, e.g. metadata.plan:pro",
        );
      }
      if (op !== ":") throw this.noComparison(name, op, opPos);
      const v = this.value(name, true);
      if (!v.quoted && v.text === "*") return this.metadata(path, null);
      this.noWildcard(name, v);
      return this.metadata(path, v.text);
    }

    if (lower === TIME_FIELD) {
      if (op === ":") {
        throw new QuerySyntaxError(`"${TIME_FIELD}" needs a comparison`, opPos, `use >=, >, <= or <, e.g. ${TIME_FIELD}>=2026-01-01`);
      }
      const v = this.value(name);
      return this.timeBound(op, v);
    }

    const field = TERM_FIELD_NAMES.get(lower);
    if (!field) throw new QuerySyntaxError(`unknown field "${name}"`, start, `known fields: ${KNOWN_FIELDS_TEXT}`);

    if (field === "severity" && op !== ":") {
      const v = this.value(name);
      const sev = this.enumValue(field, v) as SeverityName;
      const at = SEVERITY_ORDER.indexOf(sev);
      const values =
        op === ">="
          ? severitiesAtLeast(sev)
          : op === ">"
            ? SEVERITY_ORDER.slice(at + 1)
            : op === "<="
              ? SEVERITY_ORDER.slice(0, at + 1)
              : SEVERITY_ORDER.slice(0, at);
      this.out.push(values.length ? { kind: "terms", field, values: [...values] } : { kind: "none" });
      return;
    }
    if (op !== ":") throw this.noComparison(name, op, opPos);

    const v = this.value(name, field !== "action" && !ENUMS[field]);
    if (field === "action") return this.action(v);
    if (ENUMS[field]) return this.terms(field, this.enumValue(field, v));
    this.noWildcard(name, v);
    this.terms(field, v.text);
  }

  private noComparison(name: string, op: Op, opPos: number): QuerySyntaxError {
    return new QuerySyntaxError(
      `"${name}" does not support "${op}"`,
      opPos,
      `only severity and ${TIME_FIELD} compare; use "${name}:value"`,
    );
  }

  private noWildcard(name: string, v: Value): void {
    if (!v.quoted && v.text.includes("*")) {
      throw new QuerySyntaxError(
        `wildcards are not supported for "${name}"`,
        v.position + v.text.indexOf("*"),
        'only action:<prefix>.* and metadata.<key>:* take "*"; quote the value to match a literal "*"',
      );
    }
  }

  private enumValue(field: TermField, v: Value): string {
    const e = ENUMS[field]!;
    let t = v.text.toUpperCase();
    if (t.startsWith(e.prefix)) t = t.slice(e.prefix.length);
    if (!e.names.includes(t)) {
      throw new QuerySyntaxError(`invalid ${field} "${v.text}"`, v.position, `valid values: ${e.names.join(", ")}`);
    }
    return t;
  }

  private group<C extends Condition>(key: string, make: () => C): C {
    let c = this.groups.get(key) as C | undefined;
    if (!c) {
      c = make();
      this.groups.set(key, c);
      this.out.push(c);
    }
    return c;
  }

  private terms(field: TermField, value: string): void {
    const c = this.group(`terms:${field}`, () => ({ kind: "terms" as const, field, values: [] as string[] }));
    if (!c.values.includes(value)) c.values.push(value);
  }

  private action(v: Value): void {
    if (!ACTION_PATTERN.test(v.text)) {
      throw new QuerySyntaxError(
        `invalid action "${v.text}"`,
        v.position,
        'an action is dotted lowercase segments of a-z, 0-9, "_", "-", optionally ending in ".*" for a prefix',
      );
    }
    const c = this.group("action", () => ({ kind: "action" as const, exact: [] as string[], prefixes: [] as string[] }));
    const list = v.text.endsWith(".*") ? c.prefixes : c.exact;
    const value = v.text.endsWith(".*") ? v.text.slice(0, -1) : v.text;
    if (!list.includes(value)) list.push(value);
  }

  /** value null: the key exists, which includes every value (empty `values`). */
  private metadata(path: string[], value: string | null): void {
    const key = JSON.stringify(path);
    const c = this.group(`metadata:${key}`, () => ({ kind: "metadata" as const, path, values: [] as string[] }));
    if (this.metadataExists.has(key)) return;
    if (value === null) {
      this.metadataExists.add(key);
      c.values.length = 0;
    } else if (!c.values.includes(value)) {
      c.values.push(value);
    }
  }

  private timeBound(op: Op, v: Value): void {
    const nanos = parseInstantNanos(v.text);
    if (nanos === null) {
      throw new QuerySyntaxError(
        `invalid time "${v.text}"`,
        v.position,
        "use RFC 3339 with Z or an offset (2026-01-01T09:30:00Z, 2026-01-01T09:30:00.5+02:00) or a date (2026-01-01, midnight UTC)",
      );
    }
    // Stored times are whole microseconds: m >= t  <=>  m >= ceil(t), and m <= t  <=>  m < floor(t) + 1.
    const floor = floorDiv(nanos, 1000n);
    const ceil = -floorDiv(-nanos, 1000n);
    if (!this.time) {
      this.time = { kind: "time", from: null, to: null };
      this.out.push(this.time);
    }
    const t = this.time;
    if (op === ">=" || op === ">") {
      const from = op === ">=" ? ceil : floor + 1n;
      if (t.from === null || from > t.from) t.from = from;
    } else {
      const to = op === "<" ? ceil : floor + 1n;
      if (t.to === null || to < t.to) t.to = to;
    }
  }
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

const TIME_PATTERN = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2})))?$/;

/** Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/**
 * RFC 3339 (`2026-01-01T09:30:00Z`, `...T09:30:00.123456789+02:00`) or a bare
 * date (midnight UTC) as nanoseconds since the epoch; null if invalid or
 * outside the years 0001-9999 that events can have.
 */
export function parseInstantNanos(text: string): bigint | null {
  const m = TIME_PATTERN.exec(text);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return null;
  let seconds = BigInt(daysFromCivil(y, mo, d)) * 86400n;
  let nanos = 0n;
  if (m[4] !== undefined) {
    const [h, mi, sec] = [Number(m[4]), Number(m[5]), Number(m[6])];
    if (h > 23 || mi > 59 || sec > 59) return null;
    seconds += BigInt(h * 3600 + mi * 60 + sec);
    nanos = BigInt((m[7] ?? "").padEnd(9, "0"));
    if (m[9] !== undefined) {
      const [oh, om] = [Number(m[10]), Number(m[11])];
      if (oh > 23 || om > 59) return null;
      const offset = BigInt(oh * 3600 + om * 60);
      seconds += m[9] === "+" ? -offset : offset;
    }
  }
  const total = seconds * 1_000_000_000n + nanos;
  if (total < MIN_MICROS * 1000n || total > MAX_MICROS * 1000n + 999n) return null;
  return total;
}
