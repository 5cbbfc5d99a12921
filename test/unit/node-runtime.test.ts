// Which heap flags the service adds to its own command line (src/node-runtime.ts).
import { describe, expect, it } from "vitest";
import { HEAP_FLAGS, missingHeapFlags, wantedHeapFlags } from "../../src/node-runtime.ts";

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
