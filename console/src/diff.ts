// A before/after comparison of an event's `changes`, flattened to key paths:
// one row per path whose value was added, removed or changed (and the
// unchanged ones, for context).
export type DiffKind = "added" | "removed" | "changed" | "same";
export type DiffRow = { path: string; kind: DiffKind; before?: unknown; after?: unknown };

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function flatten(v: unknown, prefix: string, out: Map<string, unknown>): void {
  if (isObject(v) && Object.keys(v).length > 0) {
    for (const [k, child] of Object.entries(v)) flatten(child, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  if (prefix) out.set(prefix, v);
}

export function diffChanges(before: unknown, after: unknown): DiffRow[] {
  const b = new Map<string, unknown>();
  const a = new Map<string, unknown>();
  flatten(before ?? {}, "", b);
  flatten(after ?? {}, "", a);
  const paths = [...new Set([...b.keys(), ...a.keys()])].sort();
  return paths.map((path) => {
    if (!b.has(path)) return { path, kind: "added", after: a.get(path) };
    if (!a.has(path)) return { path, kind: "removed", before: b.get(path) };
    const same = JSON.stringify(b.get(path)) === JSON.stringify(a.get(path));
    return { path, kind: same ? "same" : "changed", before: b.get(path), after: a.get(path) };
  });
}
