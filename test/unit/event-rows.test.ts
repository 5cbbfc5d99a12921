// The COPY text the event writer sends (src/store/event-rows.ts).
import { describe, expect, it } from "vitest";
import { copyEventsChunks, copyEventsText } from "../../src/store/event-rows.ts";
import { chainRecords, fullEvent, minimalEvent } from "./fixtures.ts";

const records = chainRecords([
  fullEvent({ id: "e1" }),
  minimalEvent({ id: "e2", message: "tab\there, newline\nthere, backslash \\ too" }),
  fullEvent({ id: "e3" }),
  minimalEvent({ id: "e4" }),
]);

describe("copyEventsChunks", () => {
  it("is copyEventsText in pieces of whole rows", () => {
    const whole = copyEventsText(records);
    expect(whole.split("\n")).toHaveLength(records.length + 1);
    for (const size of [1, 200, 1000, whole.length, Number.POSITIVE_INFINITY]) {
      const pieces = [...copyEventsChunks(records, size)];
      expect(pieces.join("")).toBe(whole);
      for (const p of pieces) expect(p.endsWith("\n")).toBe(true);
    }
  });

  it("a piece once it reaches the size, one row per piece at the smallest", () => {
    expect([...copyEventsChunks(records, 1)]).toHaveLength(records.length);
    expect([...copyEventsChunks(records, Number.POSITIVE_INFINITY)]).toHaveLength(1);
    expect([...copyEventsChunks([], 1)]).toEqual([]);
  });
});
