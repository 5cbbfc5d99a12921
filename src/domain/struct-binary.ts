// google.protobuf.Struct from its binary encoding straight into the JSON
// value that protobuf-es gives a Struct field (JsonObject). protobuf-es
// first builds a Struct message, a Value message and a oneof object for
// every value, then converts them into JSON: for the open content of a
// typical event (about 560 bytes of metadata) that was three quarters of
// decoding the whole event, and most of its garbage
// (docs/PERFORMANCE.md, "Round five").
//
// The result must be exactly what protobuf-es gives, for any bytes, because
// it is hashed into the chain: the same reader for every scalar (its
// BinaryReader: varints, bounds, UTF-8), the same defaults (an entry without
// a key is "", a Value without a kind is null), the same merges (a message
// field sent twice is merged: a Struct's entries, a ListValue's values; a
// scalar is replaced), the same recursion limit, and keys set as protobuf-es
// sets them (`__proto__` as an own property). test/unit/struct-binary.test.ts
// compares both on random and on corrupted encodings.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { StructSchema, ValueSchema } from "@bufbuild/protobuf/wkt";

/** protobuf-es's default recursion limit: messages nested deeper are refused. */
const RECURSION_LIMIT = 100;

// Whether protobuf-es refuses invalid UTF-8 in these strings (proto3: yes).
const STRICT_KEYS = StructSchema.field.fields.utf8Validation;
const STRICT_STRINGS = ValueSchema.field.stringValue.utf8Validation;

function setOwn(target: JsonObject, key: string, value: JsonValue): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

function enter(depth: number): void {
  if (depth > RECURSION_LIMIT) throw new Error(`maximum recursion depth of ${RECURSION_LIMIT} reached`);
}

function isObject(v: JsonValue): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The Struct of `length` bytes at the reader's position (a message at `depth`), merged into `target`. */
function readStruct(r: BinaryReader, length: number, target: JsonObject, depth: number): void {
  enter(depth);
  const end = r.pos + length;
  while (r.pos < end) {
    const [no, wireType] = r.tag();
    if (no !== 1) {
      r.skip(wireType, no, RECURSION_LIMIT - depth);
      continue;
    }
    // A map entry: key 1, value 2, either may be missing or repeated.
    const entryEnd = r.uint32() + r.pos;
    let key = "";
    let value: JsonValue | undefined;
    while (r.pos < entryEnd) {
      const [eno, ewt] = r.tag();
      if (eno === 1) key = r.string(STRICT_KEYS);
      else if (eno === 2) value = readValue(r, r.uint32(), value, depth + 1);
      else r.skip(ewt, eno, RECURSION_LIMIT - depth);
    }
    setOwn(target, key, value === undefined ? null : value);
  }
}

/** A ListValue's values, appended to `target`. */
function readList(r: BinaryReader, length: number, target: JsonValue[], depth: number): void {
  enter(depth);
  const end = r.pos + length;
  while (r.pos < end) {
    const [no, wireType] = r.tag();
    if (no === 1) target.push(readValue(r, r.uint32(), undefined, depth + 1));
    else r.skip(wireType, no, RECURSION_LIMIT - depth);
  }
}

/** A Value, merged into `existing` (the value of the same entry read before, if any). */
function readValue(r: BinaryReader, length: number, existing: JsonValue | undefined, depth: number): JsonValue {
  enter(depth);
  const end = r.pos + length;
  let v: JsonValue = existing === undefined ? null : existing;
  while (r.pos < end) {
    const [no, wireType] = r.tag();
    switch (no) {
      case 1: // null_value: any number of the enum is null
        r.int32();
        v = null;
        break;
      case 2:
        v = r.double();
        break;
      case 3:
        v = r.string(STRICT_STRINGS);
        break;
      case 4:
        v = r.bool();
        break;
      case 5: {
        const struct: JsonObject = isObject(v) ? v : {};
        readStruct(r, r.uint32(), struct, depth + 1);
        v = struct;
        break;
      }
      case 6: {
        const list: JsonValue[] = Array.isArray(v) ? v : [];
        readList(r, r.uint32(), list, depth + 1);
        v = list;
        break;
      }
      default:
        r.skip(wireType, no, RECURSION_LIMIT - depth);
    }
  }
  return v;
}

/**
 * Merges the Struct encoded in `bytes` into `target` and returns it. `depth`
 * is the Struct's depth in the request as protobuf-es counts it (the
 * request message is 1), so that the recursion limit falls where it would.
 */
export function mergeStructBinary(target: JsonObject, bytes: Uint8Array, depth: number): JsonObject {
  const r = new BinaryReader(bytes);
  readStruct(r, bytes.length, target, depth);
  return target;
}

/** The JSON value of a Struct field sent as `occurrences` (each one's bytes, merged in order); undefined when it was not sent. */
export function structFromOccurrences(occurrences: readonly Uint8Array[], depth: number): JsonObject | undefined {
  if (occurrences.length === 0) return undefined;
  const target: JsonObject = {};
  for (const bytes of occurrences) mergeStructBinary(target, bytes, depth);
  return target;
}
