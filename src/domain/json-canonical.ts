// Canonical JSON: object keys sorted by code unit, no white space, numbers in
// JavaScript's shortest round-trip form. Hashes are computed over this text,
// so the same content always gives the same bytes, whether it comes from a
// producer's request or back out of PostgreSQL's jsonb.
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Sorts keys by code unit, as Array.prototype.sort does, in place. Objects
 * of events have a few keys: an insertion sort allocates nothing, while
 * sort() copied the array every time (a tenth of everything ingest
 * allocated, docs/PERFORMANCE.md, "Round two: memory").
 */
function sortKeys(keys: string[]): void {
  if (keys.length > 32) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

/**
 * JSON.stringify(s) for a string: quoted as it is when nothing in it needs an
 * escape, which is nearly every key and value of an event. A call of
 * JSON.stringify per string was a third of canonicalJson's time.
 */
export function jsonString(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // Control characters, quote and backslash are escaped; surrogates are
    // escaped when unpaired, which JSON.stringify decides.
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s);
  }
  return `"${s}"`;
}

// Runs over every value of every ingested event: plain loops and string
// concatenation rather than map/join, which allocate an array per level.
export function canonicalJson(value: Json): string {
  if (typeof value === "string") return jsonString(value);
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new Error(`cannot encode non-finite number ${value}`);
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    let s = "[";
    for (let i = 0; i < value.length; i++) s += (i ? "," : "") + canonicalJson(value[i]!);
    return s + "]";
  }
  const keys = Object.keys(value);
  sortKeys(keys);
  let s = "{";
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    s += (i ? "," : "") + jsonString(k) + ":" + canonicalJson(value[k]!);
  }
  return s + "}";
}
