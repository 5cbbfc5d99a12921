// VerifyChain's logic, apart from how the events are read: which range a
// request asks for, and the verdict on that range as a chain walk delivers it
// (EventReader.walkChain: first the stored hash just before the range and the
// range's last sequence, then the events in sequence order).
import type { StoredRecord } from "./event-record.ts";
import { type ChainBreak, ChainVerifier, GENESIS_HASH } from "./hash-chain.ts";

/** Sequences are PostgreSQL bigints. */
const MAX_SEQUENCE = 2n ** 63n - 1n;

/** A range a request cannot ask for; `field` names the request field at fault. */
export class ChainRangeError extends Error {
  readonly field: string;
  constructor(field: string, reason: string) {
    super(reason);
    this.name = "ChainRangeError";
    this.field = field;
  }
}

export type ChainRange = { from: bigint; to: bigint | null };

/** The range of a request: 0 means from the first event, resp. to the head, and a `to` beyond the head also means the head. */
export function chainRange(fromSequence: bigint, toSequence: bigint): ChainRange {
  if (fromSequence > MAX_SEQUENCE) throw new ChainRangeError("from_sequence", `must be at most ${MAX_SEQUENCE}`);
  const from = fromSequence > 1n ? fromSequence : 1n;
  const to = toSequence > 0n ? toSequence : null;
  if (to !== null && to < from) throw new ChainRangeError("to_sequence", "must not be below from_sequence");
  return { from, to };
}

export type ChainVerdict = {
  ok: boolean;
  checked: bigint;
  fromSequence: bigint;
  /** The last sequence looked at; from - 1 when the range was empty. */
  toSequence: bigint;
  /** The hash of the last event checked when ok; "" otherwise. */
  headHash: string;
  broken: ChainBreak | null;
};

function missing(sequence: bigint): ChainBreak {
  return { sequence, eventId: "", reason: `event at sequence ${sequence} is missing`, expectedHash: "", storedHash: "" };
}

/** One verification of `range`: hand `start` to the chain walk, then read `verdict()`. */
export class RangeVerification {
  readonly range: ChainRange;
  private from: bigint;
  private verifier: ChainVerifier;
  private broken: ChainBreak | null = null;
  private end: bigint;

  constructor(range: ChainRange) {
    this.range = range;
    this.from = range.from;
    this.verifier = new ChainVerifier(range.from, GENESIS_HASH);
    this.end = range.from - 1n;
  }

  /**
   * The chain walk's start: `prevHash` is the stored hash before the range
   * (null if none), `last` the range's last sequence, `first` where the walk
   * begins when retention removed the events before it (its chain anchor's
   * sequence + 1, with the anchor's hash as `prevHash`).
   */
  readonly start = (prevHash: string | null, last: bigint, first: bigint = this.from): ((r: StoredRecord) => boolean) => {
    this.from = first > this.from ? first : this.from;
    this.end = last;
    this.verifier = new ChainVerifier(this.from, prevHash ?? GENESIS_HASH);
    // The event before the range is gone: the first link cannot be checked.
    if (this.from > 1n && prevHash === null && this.from <= last + 1n) {
      this.broken = missing(this.from - 1n);
      return () => false;
    }
    return (r) => {
      this.broken = this.verifier.next(r);
      return this.broken === null;
    };
  };

  verdict(): ChainVerdict {
    const broken = this.broken ?? this.verifier.finish(this.end);
    return {
      ok: broken === null,
      checked: this.verifier.checked,
      fromSequence: this.from,
      toSequence: this.end < this.from ? this.from - 1n : this.end,
      headHash: broken === null ? this.verifier.lastHash : "",
      broken,
    };
  }
}
