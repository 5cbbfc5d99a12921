// Which backend serves an export when Elasticsearch is configured
// (src/search/export-routing.ts): PostgreSQL for envelope filters and time
// ranges, the index for free text and metadata; everything else the index's.
import { describe, expect, it } from "vitest";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import type { SearchBackend } from "../../src/search/backend.ts";
import { exportableFromRecords, withExportsFromRecords } from "../../src/search/export-routing.ts";
import { type ExportPlan, exportChunks } from "../../src/services/export-stream.ts";

const never = new AbortController().signal;

function record(sequence: bigint): StoredRecord {
  return {
    tenantId: "t",
    id: `e${sequence}`,
    sequence,
    occurredAt: 1_700_000_000_000_000n + sequence,
    receivedAt: 1_700_000_000_000_000n + sequence,
    action: "a.b",
    actor: { id: "u", type: "USER", name: "", ip: "", userAgent: "", sessionId: "" },
    target: { type: "doc", id: "d", name: "" },
    outcome: "SUCCESS",
    severity: "INFO",
    context: { requestId: "", traceId: "", source: "", location: "" },
    changes: null,
    metadata: null,
    message: "",
    contentHash: "c",
    prevHash: "p",
    hash: "h",
  };
}

/** A backend that answers every call with its own name, and records the calls. */
function fake(name: "elasticsearch" | "postgresql", withNdjson: boolean, calls: string[]): SearchBackend {
  const note = (what: string) => calls.push(`${name}.${what}`);
  return {
    name,
    search: async () => (note("search"), { records: [], total: null, totalIsLowerBound: false }),
    export: async function* () {
      note("export");
      yield [record(1n), record(2n)];
      yield [record(3n)];
    },
    ...(withNdjson
      ? {
          exportNdjson: async function* () {
            note("exportNdjson");
            yield Buffer.from(`${name}\n`);
          },
        }
      : {}),
    stats: async () => (note("stats"), { total: 0n, histogram: [], top: [] }),
    waitForPosition: async () => (note("waitForPosition"), true),
    indexStatus: async () => {
      note("indexStatus");
      return { backend: name, committedPosition: 0n, indexedPosition: 0n, lagEvents: 0n, lagSeconds: 0, lastReconcile: null };
    },
  };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("exportableFromRecords", () => {
  it("takes envelope filters and time ranges, not free text or metadata", () => {
    expect(exportableFromRecords({ conditions: [] })).toBe(true);
    expect(exportableFromRecords({ conditions: [{ kind: "action", exact: ["a.b"], prefixes: ["customer."] }] })).toBe(true);
    expect(exportableFromRecords({ conditions: [{ kind: "time", from: 1n, to: 2n }, { kind: "none" }] })).toBe(true);
    expect(exportableFromRecords({ conditions: [{ kind: "terms", field: "target.id", values: ["x"] }] })).toBe(true);
    expect(exportableFromRecords({ conditions: [{ kind: "text", words: ["x"], negate: false }] })).toBe(false);
    expect(exportableFromRecords({ conditions: [{ kind: "text", words: ["x"], negate: true }] })).toBe(false);
    expect(exportableFromRecords({ conditions: [{ kind: "metadata", path: ["k"], values: ["v"] }] })).toBe(false);
  });
});

describe("withExportsFromRecords", () => {
  it("exports envelope filters from the records backend, as lines and as records", async () => {
    const calls: string[] = [];
    const b = withExportsFromRecords(fake("elasticsearch", false, calls), fake("postgresql", true, calls));
    const q = { conditions: [{ kind: "terms" as const, field: "action" as const, values: ["a.b"] }] };
    expect((await collect(b.exportNdjson!("t", q, "asc", null, never)!)).map(String)).toEqual(["postgresql\n"]);
    expect((await collect(b.export("t", q, "asc", null, never))).flat().map((r) => r.sequence)).toEqual([1n, 2n, 3n]);
    expect(calls).toEqual(["postgresql.exportNdjson", "postgresql.export"]);
  });

  it("exports free text and metadata from the index: no lines of its own, so the file is made from its records", async () => {
    const calls: string[] = [];
    const b = withExportsFromRecords(fake("elasticsearch", false, calls), fake("postgresql", true, calls));
    const q = { conditions: [{ kind: "text" as const, words: ["x"], negate: false }] };
    expect(b.exportNdjson!("t", q, "asc", null, never)).toBeNull();
    expect(calls).toEqual([]);
    const plan: ExportPlan = { tenantId: "t", q, direction: "asc", limit: null, format: "ndjson" };
    const file = Buffer.concat(await collect(exportChunks(b, plan, never))).toString();
    expect(file).toBe([1n, 2n, 3n].map((n) => ndjsonLineOfRecord(record(n))).join(""));
    await collect(b.export("t", { conditions: [{ kind: "metadata", path: ["k"], values: ["v"] }] }, "desc", 5n, never));
    expect(calls).toEqual(["elasticsearch.export", "elasticsearch.export"]);
  });

  it("leaves search, stats, positions and index status to the index", async () => {
    const calls: string[] = [];
    const b = withExportsFromRecords(fake("elasticsearch", false, calls), fake("postgresql", true, calls));
    expect(b.name).toBe("elasticsearch");
    await b.search("t", { conditions: [] }, "asc", null, 10, false);
    await b.stats("t", { conditions: [] }, "day", 5);
    await b.waitForPosition("t", 1n, 10);
    expect((await b.indexStatus("t")).backend).toBe("elasticsearch");
    expect(calls).toEqual(["elasticsearch.search", "elasticsearch.stats", "elasticsearch.waitForPosition", "elasticsearch.indexStatus"]);
  });
});
