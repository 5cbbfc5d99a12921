// Checks every request message for values that no contract rule excludes but
// that are client mistakes all the same, walking its fields along the
// descriptor: strings with NUL characters (PostgreSQL refuses them in text
// parameters, which surfaced as INTERNAL) and Timestamps that are not
// valid ones (nanos outside 0..999,999,999, or seconds outside the years 1 to
// 9999: protobuf-es decodes any int64/int32 from binary). One generic walk
// rather than a check per parameter, so a field added later is covered too.
//
// Messages of the types in `skip` are not entered: events are validated one
// by one (src/domain/event-validation.ts) and a bad event is answered
// REJECTED in the summary, not by failing the whole call.
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import type { FieldViolation } from "./event-validation.ts";
import { timestampProblem } from "./timestamp.ts";

const NUL_REASON = "must not contain NUL characters";
// Open JSON content: only events carry it, and their validation checks it.
const OPEN_TYPES = new Set(["google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"]);

/** The first violation in `message` (of type `desc`), or null. Field paths as protovalidate writes them. */
export function requestViolation(desc: DescMessage, message: object, skip: ReadonlySet<string> = new Set()): FieldViolation | null {
  return walk(desc, message as Record<string, unknown>, "", skip);
}

function join(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

function walk(desc: DescMessage, msg: Record<string, unknown>, path: string, skip: ReadonlySet<string>): FieldViolation | null {
  for (const f of desc.fields) {
    let value: unknown;
    if (f.oneof) {
      const o = msg[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (o?.case !== f.localName) continue;
      value = o.value;
    } else {
      value = msg[f.localName];
    }
    if (value === undefined || value === null) continue;
    const at = join(path, f.name);
    const v = fieldViolation(f, value, at, skip);
    if (v) return v;
  }
  return null;
}

function fieldViolation(f: DescField, value: unknown, at: string, skip: ReadonlySet<string>): FieldViolation | null {
  switch (f.fieldKind) {
    case "scalar":
      return f.scalar === ScalarType.STRING && (value as string).includes("\u0000") ? { field: at, reason: NUL_REASON } : null;
    case "enum":
      return null;
    case "message":
      return messageViolation(f.message, value as Record<string, unknown>, at, skip);
    case "list": {
      const items = value as unknown[];
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (f.listKind === "scalar" && f.scalar === ScalarType.STRING && (item as string).includes("\u0000")) {
          return { field: `${at}[${i}]`, reason: NUL_REASON };
        }
        if (f.listKind === "message") {
          const v = messageViolation(f.message, item as Record<string, unknown>, `${at}[${i}]`, skip);
          if (v) return v;
        }
      }
      return null;
    }
    case "map": {
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        const keyAt = `${at}[${JSON.stringify(key)}]`;
        if (key.includes("\u0000")) return { field: keyAt, reason: `key ${NUL_REASON}` };
        if (f.mapKind === "scalar" && f.scalar === ScalarType.STRING && (item as string).includes("\u0000")) {
          return { field: keyAt, reason: NUL_REASON };
        }
        if (f.mapKind === "message") {
          const v = messageViolation(f.message, item as Record<string, unknown>, keyAt, skip);
          if (v) return v;
        }
      }
      return null;
    }
  }
}

function messageViolation(desc: DescMessage, msg: Record<string, unknown>, at: string, skip: ReadonlySet<string>): FieldViolation | null {
  if (desc.typeName === "google.protobuf.Timestamp") {
    const reason = timestampProblem(msg as { seconds: bigint; nanos: number });
    return reason ? { field: at, reason } : null;
  }
  if (skip.has(desc.typeName) || OPEN_TYPES.has(desc.typeName)) return null;
  return walk(desc, msg, at, skip);
}
