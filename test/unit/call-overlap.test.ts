// bench/call-overlap.ts: which attacker calls the victim's slowest calls ran beside.
import { describe, expect, it } from "vitest";
import { callOverlap, type TimedCall } from "../../bench/call-overlap.ts";

const call = (kind: string, start: number, end: number): TimedCall => ({ kind, start, end });

describe("callOverlap", () => {
  it("finds the kind in flight during the slow calls more often than during all of them", () => {
    // 100 appends one after the other, 5 ms each, but the one at 500 ms takes 50 ms, while a big Append runs;
    // a refused search during every other append.
    const start = (i: number) => i * 10 + (i > 50 ? 45 : 0);
    const victim = Array.from({ length: 100 }, (_, i) => call("append", start(i), start(i) + (i === 50 ? 50 : 5)));
    const searches = Array.from({ length: 50 }, (_, k) => call("search:InvalidArgument", start(2 * k) + 1, start(2 * k) + 2));
    const attacker = [call("shards:OK", 505, 540), ...searches];
    const [report] = callOverlap(victim, attacker);
    expect(report).toMatchObject({ op: "append", calls: 100, slowCalls: 1, thresholdMs: 50 });
    const row = (kind: string) => report!.rows.find((r) => r.kind === kind)!;
    expect(row("shards:OK")).toEqual({
      kind: "shards:OK",
      all: 0.01,
      slow: 1,
      beside: { p50: 50, p90: 50 },
      apart: { p50: 5, p90: 5 },
    });
    // Refused searches: during half of all the appends, and during the slow one too.
    expect(row("search:InvalidArgument").all).toBe(0.5);
    expect(row("search:InvalidArgument").slow).toBe(1);
  });

  it("counts a call that started before the victim's and was still running, not one that ended before it", () => {
    const victim = [call("get", 100, 110), call("get", 200, 201)];
    const long = call("shards:OK", 0, 105);
    const ended = call("timestamp:OK", 0, 99);
    const [report] = callOverlap(victim, [long, ended, call("short", 150, 151)]);
    expect(report!.rows).toEqual([
      { kind: "shards:OK", all: 0.5, slow: 1, beside: { p50: 10, p90: 10 }, apart: { p50: 1, p90: 1 } },
      { kind: "short", all: 0, slow: 0, beside: null, apart: { p50: 1, p90: 10 } },
      { kind: "timestamp:OK", all: 0, slow: 0, beside: null, apart: { p50: 1, p90: 10 } },
    ]);
  });

  it("gives the durations of the calls beside a kind and apart from it as nearest-rank percentiles", () => {
    // Ten gets of 1..10 ms, one after the other; a slow Append beside the last three.
    const victim = Array.from({ length: 10 }, (_, i) => call("get", i * 100, i * 100 + i + 1));
    const [report] = callOverlap(victim, [call("shards:OK", 700, 1000)]);
    expect(report!.rows[0]).toMatchObject({ beside: { p50: 9, p90: 10 }, apart: { p50: 4, p90: 7 } });
  });

  it("reports each operation apart, and nothing for none", () => {
    expect(callOverlap([], [call("x", 0, 1)])).toEqual([]);
    const reports = callOverlap([call("search", 0, 1), call("append", 0, 1)], []);
    expect(reports.map((r) => [r.op, r.rows.length])).toEqual([
      ["append", 0],
      ["search", 0],
    ]);
  });
});
