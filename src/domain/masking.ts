// Masking at ingest (docs/ARCHITECTURE.md, "Data protection"): secrets that
// producers put into an event by mistake are replaced before the event is
// hashed, stored or indexed, so the hash chain covers what is kept and the
// secret exists nowhere. Applies to `metadata`, `changes.before`,
// `changes.after` and `message`; the other fields are typed (ids, names,
// addresses) and stay as sent. Pure and deterministic: a retry with the same
// content and the same rules masks alike and is recognised as a duplicate.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { EventRecord } from "./event-record.ts";

export type MaskingPattern = "card" | "email";

export type MaskingRules = {
  /**
   * Object keys whose values are masked whole, compared without case, `-`
   * or `_`: a rule `api_key` masks `apiKey`, `API-KEY` and, as a suffix,
   * `x_api_key` or `stripeApiKey`.
   */
  keys: string[];
  /** Patterns masked inside every string value and in `message`. */
  patterns: MaskingPattern[];
  /**
   * Exact dotted paths masked whole, from the event's root:
   * `metadata.customer.ssn`, `changes.after.iban` (`changes.*.iban`: both
   * sides). Array elements are not addressed by paths.
   */
  paths: string[];
};

export const MASKING_PATTERNS: readonly MaskingPattern[] = ["card", "email"];

/**
 * For tenants that set no rules: credentials under their usual names and card
 * numbers. E-mail addresses are not masked by default: they often are the
 * audited fact itself (who was invited); a tenant that wants them masked adds
 * the pattern.
 */
export const DEFAULT_MASKING_RULES: MaskingRules = {
  keys: [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "cookie",
    "set_cookie",
    "private_key",
    "credentials",
  ],
  patterns: ["card"],
  paths: [],
};

export const MASKING_LIMITS = { keys: 100, paths: 100, length: 128 } as const;

/** Why a rule set is refused, by field (`keys[2]`), for INVALID_ARGUMENT details. */
export type MaskingRuleProblem = { field: string; reason: string };

const PATH_RE = /^(metadata|changes\.(before|after|\*))(\.[^.\s]+)+$/;

export function checkMaskingRules(rules: MaskingRules): MaskingRuleProblem[] {
  const problems: MaskingRuleProblem[] = [];
  if (rules.keys.length > MASKING_LIMITS.keys) problems.push({ field: "keys", reason: `at most ${MASKING_LIMITS.keys} keys` });
  if (rules.paths.length > MASKING_LIMITS.paths) problems.push({ field: "paths", reason: `at most ${MASKING_LIMITS.paths} paths` });
  rules.keys.forEach((k, i) => {
    if (normaliseKey(k).length === 0 || k.length > MASKING_LIMITS.length)
      problems.push({ field: `keys[${i}]`, reason: `a key name with a letter or digit, at most ${MASKING_LIMITS.length} characters` });
  });
  rules.patterns.forEach((p, i) => {
    if (!MASKING_PATTERNS.includes(p)) problems.push({ field: `patterns[${i}]`, reason: `one of ${MASKING_PATTERNS.join(", ")}` });
  });
  rules.paths.forEach((p, i) => {
    if (!PATH_RE.test(p) || p.length > 256)
      problems.push({ field: `paths[${i}]`, reason: "a dotted path under metadata, changes.before, changes.after or changes.*" });
  });
  return problems;
}

function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, "");
}

/**
 * normaliseKey of the keys seen lately: the same few keys come in event
 * after event, and normalising each one each time was most of what masking
 * allocated. Shared by every rule set and bounded: emptied when full.
 */
const normalisedKeys = new Map<string, string>();
const NORMALISED_KEYS_MAX = 4096;

function normalisedKey(key: string): string {
  let k = normalisedKeys.get(key);
  if (k === undefined) {
    k = normaliseKey(key);
    if (normalisedKeys.size >= NORMALISED_KEYS_MAX) normalisedKeys.clear();
    normalisedKeys.set(key, k);
  }
  return k;
}

/** A compiled rule set: built once per tenant and rules version, applied to every event. */
export type Masker = (record: EventRecord) => EventRecord;

export function compileMasking(rules: MaskingRules): Masker {
  const keys = [...new Set(rules.keys.map(normaliseKey).filter(Boolean))];
  const card = rules.patterns.includes("card");
  const email = rules.patterns.includes("email");
  const paths = rules.paths.map((p) => p.split("."));

  /** The rule a key falls under, or null. */
  const keyRule = (key: string): string | null => {
    const k = normalisedKey(key);
    for (const rule of keys) if (k === rule || k.endsWith(rule)) return rule;
    return null;
  };

  // Most strings of an event are shorter than any card number or address:
  // those skip the regular expressions, whose scan was most of masking's cost.
  const maskString = (s: string): string => {
    let out = s;
    if (card && out.length >= CARD_MIN_LENGTH) out = maskCards(out);
    if (email && out.length >= EMAIL_MIN_LENGTH) out = out.replace(EMAIL_RE, "[masked:email]");
    return out;
  };

  // Copy on write: a value in which nothing is masked (nearly every one) is
  // returned as it is, so masking allocates only for what it changes.
  const maskValue = (v: JsonValue): JsonValue => {
    if (typeof v === "string") return maskString(v);
    if (Array.isArray(v)) return maskArray(v);
    if (v !== null && typeof v === "object") return maskObject(v);
    return v;
  };

  /** `a` itself when nothing in it is masked, else a masked copy. */
  const maskArray = (a: JsonValue[]): JsonValue[] => {
    let out: JsonValue[] | null = null;
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      const m = maskValue(v);
      if (out === null && m !== v) out = a.slice(0, i);
      out?.push(m);
    }
    return out ?? a;
  };

  /** `o` itself when nothing in it is masked, else a masked copy (same key order). */
  const maskObject = (o: JsonObject): JsonObject => {
    let out: JsonObject | null = null;
    const ks = Object.keys(o);
    for (let i = 0; i < ks.length; i++) {
      const k = ks[i]!;
      const v = o[k] as JsonValue;
      const rule = keyRule(k);
      const m = rule !== null ? `[masked:${rule}]` : maskValue(v);
      if (out === null && m !== v) {
        out = {};
        for (let j = 0; j < i; j++) out[ks[j]!] = o[ks[j]!] as JsonValue;
      }
      if (out !== null) out[k] = m;
    }
    return out ?? o;
  };

  /** Masks `path` (below the part's root) in place on an object of our own (a copy). */
  const maskPath = (o: JsonObject, path: string[], label: string): void => {
    let cur: JsonValue = o;
    for (let i = 0; i < path.length - 1; i++) {
      if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return;
      cur = (cur as JsonObject)[path[i]!] as JsonValue;
    }
    const last = path[path.length - 1]!;
    if (cur !== null && typeof cur === "object" && !Array.isArray(cur) && Object.hasOwn(cur, last)) {
      (cur as JsonObject)[last] = `[masked:${label}]`;
    }
  };

  const part = (o: JsonObject | null, names: string[]): JsonObject | null => {
    if (o === null) return null;
    const masked = maskObject(o);
    const under: [string[], string][] = [];
    for (const p of paths) {
      for (const name of names) {
        const root = name.split(".");
        const head = p.slice(0, root.length);
        if (head.every((seg, i) => seg === root[i] || (seg === "*" && root[0] === "changes" && i === 1))) {
          under.push([p.slice(root.length), p.join(".")]);
        }
      }
    }
    if (under.length === 0) return masked;
    // Paths mask in place: on a copy, never on the caller's objects (which maskObject may have returned).
    const copy = structuredClone(masked);
    for (const [path, label] of under) maskPath(copy, path, label);
    return copy;
  };

  return (r) => {
    const metadata = part(r.metadata, ["metadata"]);
    const before = r.changes && part(r.changes.before, ["changes.before"]);
    const after = r.changes && part(r.changes.after, ["changes.after"]);
    const message = maskString(r.message);
    const changes = r.changes && (before === r.changes.before && after === r.changes.after ? r.changes : { before, after });
    if (metadata === r.metadata && changes === r.changes && message === r.message) return r;
    return { ...r, metadata, changes, message };
  };
}

// Local part and domain as most real addresses are; the point is catching
// addresses in free text, not validating them.
const EMAIL_RE = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
/** The shortest text EMAIL_RE matches: a@b.cd. */
const EMAIL_MIN_LENGTH = 6;

// 13 to 19 digits, optionally grouped by single spaces or dashes, not inside a longer run of digits.
const CARD_RE = /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/g;
/** The shortest text CARD_RE matches: 13 digits. */
const CARD_MIN_LENGTH = 13;

function maskCards(s: string): string {
  return s.replace(CARD_RE, (m) => {
    const digits = m.replace(/\D/g, "");
    return luhnValid(digits) ? `[masked:card ****${digits.slice(-4)}]` : m;
  });
}

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}
