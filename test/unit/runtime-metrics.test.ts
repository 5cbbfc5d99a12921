import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/platform/metrics.ts";
import { procStatusBytes, runtimeRegistry } from "../../src/platform/runtime-metrics.ts";

describe("procStatusBytes", () => {
  const status = "Name:\tnode\nVmPeak:\t 1200000 kB\nVmHWM:\t  301234 kB\nVmRSS:\t  250000 kB\n";

  it("reads the field asked for, in kB, as bytes", () => {
    expect(procStatusBytes(status, "VmHWM")).toBe(301234 * 1024);
    expect(procStatusBytes(status, "VmRSS")).toBe(250000 * 1024);
  });

  it("is null when the status has no such line (a kernel thread, another system)", () => {
    expect(procStatusBytes("Name:\tkthreadd\nState:\tS (sleeping)\n", "VmHWM")).toBeNull();
  });
});

describe("runtime metrics", () => {
  it("are one registry per process, however many apps: each app's text carries them once", async () => {
    expect(runtimeRegistry()).toBe(runtimeRegistry());
    const a = new Metrics({ runtime: true });
    const b = new Metrics({ runtime: true });
    for (const m of [a, b]) {
      const { body } = await m.render();
      expect(body.match(/^# TYPE process_resident_memory_bytes /gm)).toHaveLength(1);
      expect(body.match(/^# TYPE auditlog_rpc_requests_total /gm)).toHaveLength(1);
    }
  });

  it("are left out of an app that does not serve them", async () => {
    const { body } = await new Metrics().render();
    expect(body).toContain("auditlog_rpc_requests_total");
    expect(body).not.toContain("process_resident_memory_bytes");
  });
});
