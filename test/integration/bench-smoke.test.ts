// The benchmark does not rot: a run at 1/50 of the work (bench/run.ts
// --scale 0.02, short fixed-rate phases) through every phase, with the
// service started by the bench as a child process on the test's PostgreSQL
// and Elasticsearch. No figure is asserted (speed is measured by real runs,
// docs/PERFORMANCE.md); what is checked is that every phase ran and wrote
// its results.
import type { MemorySample } from "../../bench/memory-sampler.ts";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@elastic/elasticsearch";
import { afterAll, describe, expect, inject, it } from "vitest";
import { indexNames } from "../../src/search/elasticsearch/index-names.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const PHASES = ["ingest", "append", "copy", "lag", "search", "export"];
/** Where each phase leaves its results in the JSON. */
const RESULT_KEYS = ["ingest", "append", "copyBaseline", "indexLag", "search", "export", "server"];

describe("bench smoke run", () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-smoke-"));
  const names = indexNames(`test-bench-smoke-${randomBytes(4).toString("hex")}`);
  const es = new Client({ node: inject("elasticsearchUrl") });

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    const found = await es.indices
      .get({ index: names.pattern, ignore_unavailable: true, allow_no_indices: true, expand_wildcards: "all" })
      .catch(() => ({}));
    const list = Object.keys(found);
    if (list.length) await es.indices.delete({ index: list.join(",") }).catch(() => {});
    await es.indices.deleteIndexTemplate({ name: names.templateName }).catch(() => {});
    await es.close();
  });

  it("runs every phase at scale 0.02 and records each one", { timeout: 240_000 }, async () => {
    const out = join(dir, "results.json");
    const args = [
      "bench/run.ts",
      "--start",
      "--scale",
      "0.02",
      "--queries",
      "5",
      "--append-seconds",
      "2",
      "--lag-seconds",
      "2",
      "--phases",
      PHASES.join(","),
      "--database-url",
      inject("adminDatabaseUrl"),
      "--elasticsearch-url",
      inject("elasticsearchUrl"),
      "--out",
      out,
    ];
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        args,
        { cwd: ROOT, env: { ...process.env, AUDITLOG_ES_INDEX_PREFIX: names.prefix }, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
      );
      child.stdin?.end();
    });
    expect(code, output).toBe(0);
    const doc = JSON.parse(readFileSync(out, "utf8")) as { results: Record<string, unknown>; rows: { phase: string }[] };
    const errors = Object.keys(doc.results).filter((k) => k.endsWith("Error"));
    expect(errors.map((k) => `${k}: ${String(doc.results[k])}`)).toEqual([]);
    for (const key of RESULT_KEYS) expect(doc.results[key], `results.${key}\n${output}`).toBeDefined();
    // Every search shape answered, and the export returned the events.
    const search = doc.results["search"] as Record<string, { queries: number; errors: number }>;
    expect(Object.keys(search)).toHaveLength(5);
    for (const [shape, r] of Object.entries(search))
      expect({ shape, queries: r.queries > 0, errors: r.errors }).toEqual({ shape, queries: true, errors: 0 });
    expect((doc.results["indexLag"] as { skipped?: string }).skipped).toBeUndefined();
    expect((doc.results["export"] as { rows: number }).rows).toBeGreaterThan(0);
    // The service's memory was sampled from its /metrics, and split.
    const server = doc.results["server"] as { highestSampledMemory: MemorySample | null; memorySamples: { taken: number; failed: number } };
    expect(server.memorySamples.failed).toBe(0);
    expect(server.memorySamples.taken).toBeGreaterThan(0);
    const m = server.highestSampledMemory!;
    expect(m.rssMb).toBeGreaterThan(m.heapTotalMb);
    // Labelled with the phase it fell in, or before the first ("start") or after the last ("end").
    expect(["start", ...PHASES, "end"]).toContain(m.phase);
  });
});
