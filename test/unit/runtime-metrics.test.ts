import { describe, expect, it } from "vitest";
import { peakResidentBytes } from "../../src/platform/runtime-metrics.ts";

describe("peakResidentBytes", () => {
  it("reads VmHWM in kB as bytes, and only VmHWM", () => {
    const status = "Name:\tnode\nVmPeak:\t 1200000 kB\nVmHWM:\t  301234 kB\nVmRSS:\t  250000 kB\n";
    expect(peakResidentBytes(status)).toBe(301234 * 1024);
  });

  it("is null when the status has no VmHWM line (a kernel thread, another system)", () => {
    expect(peakResidentBytes("Name:\tkthreadd\nState:\tS (sleeping)\n")).toBeNull();
  });
});
