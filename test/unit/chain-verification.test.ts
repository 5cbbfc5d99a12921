// VerifyChain's domain logic without I/O: the requested range, and the
// verdict on what a chain walk (EventReader.walkChain) delivers.
import { describe, expect, it } from "vitest";
import { ChainRangeError, chainRange, RangeVerification } from "../../src/domain/chain-verification.ts";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { chainRecords, fullEvent } from "./fixtures.ts";

const chain = chainRecords(
  Array.from({ length: 10 }, (_, i) => fullEvent({ id: `evt-${i + 1}` })),
  { tenantId: "t" },
);

/** What walkChain does over `stored` (sequence order, possibly with holes). */
function walk(stored: StoredRecord[], from: bigint, to: bigint | null, v: RangeVerification): void {
  const head = stored.at(-1)?.sequence ?? 0n;
  const last = to === null || to > head ? head : to;
  const prev = from > 1n ? (stored.find((r) => r.sequence === from - 1n)?.hash ?? null) : null;
  const visit = v.start(prev, last);
  for (const r of stored) if (r.sequence >= from && r.sequence <= last && !visit(r)) return;
}

function verdict(stored: StoredRecord[], fromSequence: bigint, toSequence: bigint) {
  const v = new RangeVerification(chainRange(fromSequence, toSequence));
  walk(stored, v.range.from, v.range.to, v);
  return v.verdict();
}

describe("chainRange", () => {
  it("reads 0 as from the first event and to the head", () => {
    expect(chainRange(0n, 0n)).toEqual({ from: 1n, to: null });
    expect(chainRange(3n, 7n)).toEqual({ from: 3n, to: 7n });
  });

  it("refuses a start beyond PostgreSQL's bigint and an end below the start, naming the field", () => {
    expect(() => chainRange(2n ** 63n, 0n)).toThrow(expect.objectContaining({ field: "from_sequence" }));
    expect(() => chainRange(5n, 4n)).toThrow(ChainRangeError);
    expect(() => chainRange(5n, 4n)).toThrow(expect.objectContaining({ field: "to_sequence" }));
  });
});

describe("RangeVerification", () => {
  it("accepts an intact chain, whole or in part, and reports the head hash", () => {
    expect(verdict(chain, 0n, 0n)).toEqual({
      ok: true,
      checked: 10n,
      fromSequence: 1n,
      toSequence: 10n,
      headHash: chain[9]!.hash,
      broken: null,
    });
    expect(verdict(chain, 4n, 6n)).toMatchObject({ ok: true, checked: 3n, fromSequence: 4n, toSequence: 6n, headHash: chain[5]!.hash });
  });

  it("reports an empty range as from - 1", () => {
    expect(verdict([], 0n, 0n)).toMatchObject({ ok: true, checked: 0n, fromSequence: 1n, toSequence: 0n });
  });

  it("finds an altered event and a missing one", () => {
    const altered = chain.map((r) => (r.sequence === 5n ? { ...r, message: "rewritten" } : r));
    expect(verdict(altered, 0n, 0n)).toMatchObject({ ok: false, checked: 4n, headHash: "", broken: { sequence: 5n, eventId: "evt-5" } });
    const holed = chain.filter((r) => r.sequence !== 7n);
    expect(verdict(holed, 0n, 0n).broken).toMatchObject({ sequence: 7n, eventId: "", reason: expect.stringMatching(/missing/) });
  });

  it("reports the event before the range missing when the range cannot be linked", () => {
    const holed = chain.filter((r) => r.sequence !== 3n);
    expect(verdict(holed, 4n, 0n)).toMatchObject({
      ok: false,
      checked: 0n,
      broken: { sequence: 3n, reason: "event at sequence 3 is missing" },
    });
  });
});
