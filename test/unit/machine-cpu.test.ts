// bench/machine-cpu.ts: where the machine's CPU went during a bench phase.
import { describe, expect, it } from "vitest";
import {
  CLK_TCK,
  type CpuCounters,
  cpuShares,
  formatCpuShares,
  parsePidStat,
  parseProcStat,
  readCpuCounters,
} from "../../bench/machine-cpu.ts";

describe("parseProcStat", () => {
  it("counts user, nice, system, irq, softirq and steal as busy, idle and iowait as not", () => {
    // user nice system idle iowait irq softirq steal guest guest_nice, in ticks
    const text = "cpu  1000 100 500 8000 200 10 40 50 300 0\ncpu0 1 2 3 4 5 6 7 8 9 0\nintr 1\n";
    expect(parseProcStat(text)).toEqual({ busy: 1700 / CLK_TCK, total: 9900 / CLK_TCK });
  });

  it("refuses a text whose first line is not the total", () => {
    expect(() => parseProcStat("intr 1 2 3\n")).toThrow(/not the cpu total/);
  });
});

describe("parsePidStat", () => {
  it("reads the name even with spaces and parentheses in it, and own and children's time", () => {
    // fields 14-17: utime stime cutime cstime
    const text = "4242 (postgres: a (b) c) S 1 4242 4242 0 -1 4194560 10 0 0 0 250 150 600 400 20 0 1 0 100 0 0";
    expect(parsePidStat(text)).toEqual({ comm: "postgres: a (b) c", own: 400 / CLK_TCK, children: 1000 / CLK_TCK });
  });
});

describe("cpuShares", () => {
  const at = (t: number, c: Partial<CpuCounters>): CpuCounters => ({
    machineBusy: 0,
    machineTotal: t,
    service: 0,
    bench: 0,
    postgres: 0,
    java: 0,
    ...c,
  });

  it("turns CPU seconds over an interval into cores, the rest being what no named process used", () => {
    // 10 s on 2 cores = 20 core-seconds; 19 busy: service 9, postgres 6, bench 2, java 1 -> other 1.
    const s = cpuShares(at(100, {}), at(120, { machineBusy: 19, service: 9, postgres: 6, bench: 2, java: 1 }), 2);
    expect(s).toEqual({
      cores: 2,
      seconds: 10,
      busyCores: 1.9,
      serviceCores: 0.9,
      postgresCores: 0.6,
      benchCores: 0.2,
      elasticsearchCores: 0.1,
      otherCores: expect.closeTo(0.1, 10),
    });
    expect(formatCpuShares(s)).toBe("1.90/2 cores: service 0.90, postgres 0.60, bench 0.20, elasticsearch 0.10, other 0.10");
  });

  it("never reports a negative rest (counters of a process read a moment after the machine's)", () => {
    const s = cpuShares(at(0, {}), at(20, { machineBusy: 10, service: 10.2 }), 2);
    expect(s.otherCores).toBe(0);
    expect(formatCpuShares(s)).not.toContain("elasticsearch");
  });

  it("reports nothing for an empty interval rather than dividing by zero", () => {
    expect(cpuShares(at(5, {}), at(5, { machineBusy: 1 }), 2).busyCores).toBe(0);
  });
});

describe("readCpuCounters", () => {
  it.runIf(process.platform === "linux")("reads this machine: busy within total, this process's own time counted", () => {
    const c = readCpuCounters(process.pid)!;
    expect(c.machineBusy).toBeGreaterThan(0);
    expect(c.machineTotal).toBeGreaterThan(c.machineBusy);
    expect(c.service).toBeGreaterThan(0);
    expect(c.bench).toBeGreaterThanOrEqual(c.service);
  });
});
