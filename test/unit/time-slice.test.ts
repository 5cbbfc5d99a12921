// src/platform/time-slice.ts: long work in slices of time, a turn of the event loop between two.
import { describe, expect, it } from "vitest";
import { TimeSlice } from "../../src/platform/time-slice.ts";

describe("TimeSlice", () => {
  it("is due once its time has run, and begins a new slice after a turn of the event loop", async () => {
    let now = 100;
    const slice = new TimeSlice(0.5, () => now);
    expect(slice.due).toBe(false);
    now = 100.4;
    expect(slice.due).toBe(false);
    now = 100.5;
    expect(slice.due).toBe(true);
    // The turn lets work queued behind the slice run before the next slice begins.
    const order: string[] = [];
    setImmediate(() => order.push("other request"));
    const turned = slice.yield().then(() => order.push("next slice"));
    now = 101;
    await turned;
    expect(order).toEqual(["other request", "next slice"]);
    expect(slice.due).toBe(false);
    now = 101.5;
    expect(slice.due).toBe(true);
  });
});
