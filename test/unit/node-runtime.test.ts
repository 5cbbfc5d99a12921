// Which heap flags and malloc settings the service adds to its own start (src/node-runtime.ts).
import { describe, expect, it } from "vitest";
import { HEAP_FLAGS, MALLOC_ENV, missingHeapFlags, missingMallocEnv, wantedHeapFlags } from "../../src/node-runtime.ts";

describe("wantedHeapFlags", () => {
  it("HEAP_FLAGS unless AUDITLOG_HEAP_FLAGS says otherwise", () => {
    expect(wantedHeapFlags(undefined)).toEqual(HEAP_FLAGS);
    expect(HEAP_FLAGS.every((f) => /^--[a-z-]+(=\d+)?$/.test(f))).toBe(true);
  });

  it("off: none (Node's defaults)", () => {
    expect(wantedHeapFlags("off")).toEqual([]);
    expect(wantedHeapFlags(" off ")).toEqual([]);
  });

  it("its own list of --name=value and --name", () => {
    expect(wantedHeapFlags("--max-semi-space-size=8  --max-old-space-size=256 --single-threaded-gc")).toEqual([
      "--max-semi-space-size=8",
      "--max-old-space-size=256",
      "--single-threaded-gc",
    ]);
  });

  it("refuses anything else, naming it", () => {
    expect(() => wantedHeapFlags("")).toThrow(/AUDITLOG_HEAP_FLAGS/);
    expect(() => wantedHeapFlags("-single-threaded-gc")).toThrow(/"-single-threaded-gc"/);
    expect(() => wantedHeapFlags("--Single")).toThrow(/"--Single"/);
    expect(() => wantedHeapFlags("--expose-gc=1 rm")).toThrow(/"rm"/);
    expect(() => wantedHeapFlags("--require=x=y")).toThrow(/--require=x=y/);
  });
});

describe("missingHeapFlags", () => {
  const wanted = ["--max-semi-space-size=16", "--heap-growing-percent=50"];

  it("all of them on a bare command line", () => {
    expect(missingHeapFlags(wanted, [], undefined)).toEqual(wanted);
  });

  it("none once they are there: a relaunched process does not relaunch", () => {
    expect(missingHeapFlags(wanted, [...wanted, "--inspect"], undefined)).toEqual([]);
  });

  it("an operator's own value wins, on the command line (either spelling) or in NODE_OPTIONS", () => {
    expect(missingHeapFlags(wanted, ["--max_semi_space_size=64"], undefined)).toEqual(["--heap-growing-percent=50"]);
    expect(missingHeapFlags(wanted, [], "--max-semi-space-size=4 --enable-source-maps")).toEqual(["--heap-growing-percent=50"]);
    expect(missingHeapFlags(wanted, ["--heap-growing-percent=0"], "--max-semi-space-size=4")).toEqual([]);
  });

  it("a boolean flag is kept out by the operator's --no- form of it", () => {
    expect(missingHeapFlags(["--single-threaded-gc"], ["--no-single-threaded-gc"], undefined)).toEqual([]);
    expect(missingHeapFlags(["--single-threaded-gc"], [], "--no-single_threaded_gc")).toEqual([]);
    expect(missingHeapFlags(["--single-threaded-gc"], ["--single-threaded-gc"], undefined)).toEqual([]);
    expect(missingHeapFlags(["--single-threaded-gc"], [], undefined)).toEqual(["--single-threaded-gc"]);
  });
});

describe("missingMallocEnv", () => {
  it("all of MALLOC_ENV on Linux when the environment sets none", () => {
    expect(missingMallocEnv({}, "linux")).toEqual(MALLOC_ENV);
    expect(missingMallocEnv({ AUDITLOG_MALLOC: "on" }, "linux")).toEqual(MALLOC_ENV);
  });

  it("none once they are there: a relaunched process does not relaunch", () => {
    expect(missingMallocEnv({ ...MALLOC_ENV }, "linux")).toEqual({});
  });

  it("an operator's own value wins", () => {
    expect(missingMallocEnv({ MALLOC_ARENA_MAX: "4" }, "linux")).toEqual({ MALLOC_MMAP_THRESHOLD_: MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"] });
  });

  it("none with AUDITLOG_MALLOC=off, or on another system", () => {
    expect(missingMallocEnv({ AUDITLOG_MALLOC: "off" }, "linux")).toEqual({});
    expect(missingMallocEnv({}, "darwin")).toEqual({});
  });

  it("refuses another AUDITLOG_MALLOC, naming it", () => {
    expect(() => missingMallocEnv({ AUDITLOG_MALLOC: "2" }, "linux")).toThrow(/AUDITLOG_MALLOC: "on" or "off", not "2"/);
  });
});
