// bench/memory-sampler.ts: the service's memory split from its /metrics.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { formatMemorySample, MemorySampler, memoryFromMetrics } from "../../bench/memory-sampler.ts";

const MB = 1024 * 1024;
const metricsText = (rssMb: number) =>
  [
    "# HELP process_resident_memory_bytes Resident memory size in bytes.",
    `process_resident_memory_bytes ${rssMb * MB}`,
    `nodejs_heap_size_total_bytes ${100 * MB}`,
    `nodejs_heap_size_used_bytes ${60 * MB}`,
    `nodejs_external_memory_bytes ${20 * MB}`,
    `nodejs_heap_space_size_total_bytes{space="old"} ${70 * MB}`,
    "",
  ].join("\n");

describe("memoryFromMetrics", () => {
  it("splits RSS into the V8 heap, external memory and the rest", () => {
    expect(memoryFromMetrics(metricsText(250), "ingest")).toEqual({
      phase: "ingest",
      rssMb: 250,
      heapTotalMb: 100,
      heapUsedMb: 60,
      externalMb: 20,
      otherMb: 130,
    });
  });

  it("is null without the process figures (metrics of an older service)", () => {
    expect(memoryFromMetrics("auditlog_rpc_requests_total 3\n", "ingest")).toBeNull();
  });

  it("reads the one-line summary", () => {
    expect(formatMemorySample(memoryFromMetrics(metricsText(250), "export")!)).toBe(
      "highest sampled RSS 250 MB (export): V8 heap 100 (60 used), external 20, other 130",
    );
  });
});

describe("MemorySampler", () => {
  let server: Server | null = null;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it("keeps the sample with the highest RSS, with its phase, and counts failed scrapes", async () => {
    const answers = [metricsText(200), metricsText(300), "not metrics", metricsText(250)];
    let i = 0;
    server = createServer((_req, res) => res.end(answers[Math.min(i++, answers.length - 1)]));
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const sampler = new MemorySampler(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 10);
    sampler.start();
    sampler.phase = "ingest";
    await expect.poll(() => i, { interval: 5 }).toBeGreaterThanOrEqual(3);
    sampler.phase = "export";
    await sampler.stop();
    expect(sampler.highest?.rssMb).toBe(300);
    expect(sampler.highest?.phase).toBe("ingest");
    expect(sampler.failures).toBe(1);
    expect(sampler.samples).toBe(i - 1);
  });
});
