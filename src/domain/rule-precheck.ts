// A fast, conservative pre-check of the contract's protovalidate rules.
//
// protovalidate is the authority on what is valid, and its messages are the
// ones clients see. But it walks every field generically and builds a field
// path for each one even when nothing is wrong: on the ingest path that was
// about a third of the server's CPU per event (docs/PERFORMANCE.md). Almost
// every event is valid, so this module compiles a message's rules, read from
// its descriptor, into plain checks that can only say "certainly valid";
// anything else (a violation, or a value it cannot decide cheaply) sends the
// message to protovalidate as before.
//
// Soundness is the one requirement: the pre-check never passes a message
// protovalidate would reject. So it understands only a small set of rules
// and compiles to null (always ask protovalidate) when a message, or any
// message reachable from it, uses another one: CEL expressions, message or
// oneof rules, predefined rule extensions, rules on lists or maps or on
// scalars with explicit presence (`optional`), string
// rules other than min_len/max_len/pattern/ip, enum rules other than
// defined_only, timestamp rules other than gte/lte. Where a supported rule is
// hard to decide exactly (IPv6 and unusual IPv4 spellings, regular
// expressions outside a subset whose JavaScript and RE2 meanings agree) it
// answers "not certain". test/unit/rule-precheck.test.ts checks it against
// protovalidate on generated messages.
import type { DescEnum, DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { getOption, hasOption, isFieldSet } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import {
  type EnumRules,
  EnumRulesSchema,
  field as fieldRulesExt,
  FieldRulesSchema,
  Ignore,
  message as messageRulesExt,
  oneof as oneofRulesExt,
  type StringRules,
  StringRulesSchema,
  type TimestampRules,
  TimestampRulesSchema,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { timestampProblem } from "./timestamp.ts";

/** True only when the message certainly passes protovalidate. */
export type Precheck = (message: object) => boolean;

type ValueCheck = (value: unknown) => boolean;

class Unsupported extends Error {}

/** Compiles the rules of `desc` (and of every message reachable from it), or null if any is beyond the pre-check. */
export function compilePrecheck(desc: DescMessage): Precheck | null {
  try {
    return compileMessage(desc, new Map());
  } catch (err) {
    if (err instanceof Unsupported) return null;
    throw err;
  }
}

function compileMessage(desc: DescMessage, compiling: Map<string, ValueCheck>): ValueCheck {
  const known = compiling.get(desc.typeName);
  if (known) return known;
  if (hasOption(desc, messageRulesExt)) throw new Unsupported();
  for (const o of desc.oneofs) if (hasOption(o, oneofRulesExt)) throw new Unsupported();
  const checks: ((m: Record<string, unknown>) => boolean)[] = [];
  // Registered before the fields are compiled, so recursive types terminate.
  const self: ValueCheck = (m) => {
    const msg = m as Record<string, unknown>;
    for (const c of checks) if (!c(msg)) return false;
    return true;
  };
  compiling.set(desc.typeName, self);
  for (const f of desc.fields) {
    const check = compileField(f, compiling);
    if (check) {
      const name = f.localName;
      // A field in a oneof lives under the oneof's property as {case, value}.
      const oneof = f.oneof?.localName;
      checks.push(
        oneof === undefined
          ? (m) => check(m[name])
          : (m) => {
              const o = m[oneof] as { case?: string; value?: unknown };
              return o.case !== name || check(o.value);
            },
      );
    }
  }
  return self;
}

/** The check of one field's value, or null when nothing about it can be invalid. */
function compileField(f: DescField, compiling: Map<string, ValueCheck>): ValueCheck | null {
  const rules = hasOption(f, fieldRulesExt) ? getOption(f, fieldRulesExt) : null;
  if (rules) assertOnly(FieldRulesSchema, rules, ["required", "ignore", "type"]);
  if (rules?.ignore === Ignore.ALWAYS) return null;
  if (rules && rules.ignore !== Ignore.UNSPECIFIED && rules.ignore !== Ignore.IF_ZERO_VALUE) throw new Unsupported();
  const skipZero = rules?.ignore === Ignore.IF_ZERO_VALUE;

  switch (f.fieldKind) {
    case "list":
    case "map": {
      if (rules) throw new Unsupported();
      const element = f.fieldKind === "list" ? f.message : f.mapKind === "message" ? f.message : undefined;
      if (element && hasRules(element, new Set())) throw new Unsupported();
      return null;
    }
    case "scalar": {
      if (!rules) return null;
      // An unset field with presence skips its rules: not modelled here.
      if (rules.required || f.presence !== FeatureSet_FieldPresence.IMPLICIT) throw new Unsupported();
      if (rules.type.case === undefined) return null;
      if (rules.type.case !== "string") throw new Unsupported();
      const check = stringCheck(rules.type.value);
      return skipZero ? (v) => v === "" || check(v as string) : (v) => check(v as string);
    }
    case "enum": {
      if (!rules) return null;
      if (rules.required || f.presence !== FeatureSet_FieldPresence.IMPLICIT) throw new Unsupported();
      if (rules.type.case === undefined) return null;
      if (rules.type.case !== "enum") throw new Unsupported();
      return enumCheck(rules.type.value, f.enum);
    }
    case "message": {
      const required = rules?.required ?? false;
      let own: ValueCheck | null = null;
      if (rules && rules.type.case !== undefined) {
        if (rules.type.case !== "timestamp" || f.message.typeName !== "google.protobuf.Timestamp") throw new Unsupported();
        own = timestampCheck(rules.type.value);
      }
      const nested = hasRules(f.message, new Set()) ? compileMessage(f.message, compiling) : null;
      if (!required && !own && !nested) return null;
      return (v) => {
        if (v === undefined) return !required;
        return (own === null || own(v)) && (nested === null || nested(v));
      };
    }
  }
}

/** Whether any rule applies anywhere inside messages of this type. */
function hasRules(desc: DescMessage, visiting: Set<string>): boolean {
  if (visiting.has(desc.typeName)) return false;
  visiting.add(desc.typeName);
  if (hasOption(desc, messageRulesExt)) return true;
  if (desc.oneofs.some((o) => hasOption(o, oneofRulesExt))) return true;
  for (const f of desc.fields) {
    if (hasOption(f, fieldRulesExt)) return true;
    if (f.message && hasRules(f.message, visiting)) return true;
  }
  return false;
}

/** Throws Unsupported unless only the named fields (or oneofs) of a rules message are set, and no extension is. */
function assertOnly<T extends Message>(schema: DescMessage, rules: T, allowed: string[]): void {
  if (rules.$unknown?.length) throw new Unsupported();
  const r = reflect(schema, rules);
  for (const f of r.fields) {
    if (r.isSet(f) && !allowed.includes(f.localName) && !(f.oneof && allowed.includes(f.oneof.localName))) throw new Unsupported();
  }
}

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

// Dotted decimal without leading zeros: every engine's idea of IPv4.
const PLAIN_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function stringCheck(r: StringRules): (s: string) => boolean {
  assertOnly(StringRulesSchema, r, ["minLen", "maxLen", "pattern", "ip", "example"]);
  if (r.wellKnown.case === "ip" && r.wellKnown.value !== true) throw new Unsupported();
  // Unset proto2 fields read as their defaults: ask whether they are set.
  const set = (f: DescField) => isFieldSet(r, f);
  const min = set(StringRulesSchema.field.minLen!) ? Number(r.minLen) : null;
  const max = set(StringRulesSchema.field.maxLen!) ? Number(r.maxLen) : null;
  const pattern = set(StringRulesSchema.field.pattern!) ? jsPattern(r.pattern!) : null;
  const ip = r.wellKnown.case === "ip";
  return (s) => {
    // A string has at most as many code points as UTF-16 units, and at least half as many.
    if (max !== null && s.length > max && codePoints(s) > max) return false;
    if (min !== null && s.length < 2 * min && codePoints(s) < min) return false;
    if (pattern !== null && !pattern.test(s)) return false;
    if (ip && !PLAIN_IPV4.test(s)) return false;
    return true;
  };
}

/**
 * A JavaScript RegExp that accepts no string the RE2 pattern rejects. Only
 * patterns without negation, look-around, flags, back-references or class
 * escapes are translated: for those, JavaScript (with the `u` flag: code
 * points, like RE2's runes) means the same or, for `.`, less.
 */
function jsPattern(source: string): RegExp {
  if (/\[\^|\(\?|\\[^.\-\\()[\]{}*+?|^$/]/.test(source)) throw new Unsupported();
  try {
    return new RegExp(source, "u");
  } catch {
    throw new Unsupported();
  }
}

function enumCheck(r: EnumRules, e: DescEnum): ValueCheck | null {
  assertOnly(EnumRulesSchema, r, ["definedOnly", "example"]);
  if (!r.definedOnly) return null;
  const defined = new Set(e.values.map((v) => v.number));
  return (v) => defined.has(v as number);
}

type Ts = { seconds: bigint; nanos: number };
const before = (a: Ts, b: Ts) => a.seconds < b.seconds || (a.seconds === b.seconds && a.nanos < b.nanos);

function timestampCheck(r: TimestampRules): ValueCheck {
  assertOnly(TimestampRulesSchema, r, ["lessThan", "greaterThan", "example"]);
  if (r.lessThan.case !== undefined && r.lessThan.case !== "lte") throw new Unsupported();
  if (r.greaterThan.case !== undefined && r.greaterThan.case !== "gte") throw new Unsupported();
  const lte = r.lessThan.case === "lte" ? r.lessThan.value : null;
  const gte = r.greaterThan.case === "gte" ? r.greaterThan.value : null;
  return (v) => {
    const t = v as Ts;
    // A malformed Timestamp is never "certainly valid": event validation refuses it (timestampProblem).
    if (typeof t.seconds !== "bigint" || timestampProblem(t) !== null) return false;
    return (lte === null || !before(lte, t)) && (gte === null || !before(t, gte));
  };
}
