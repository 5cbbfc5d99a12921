// VerifyChain's logic, apart from how the events are read: which range a
// request asks for, and the verdict on that range as a chain walk delivers it
// (EventReader.walkChain: first the stored hash just before the range and the
// range's last sequence, then the events in sequence order).
import type { ArchiveAnchor, ArchivedChainVerdict } from "./archive-chain.ts";
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
  /** The chain anchor the walk began after (retention removed the events up to it); null when it began where asked. */
  anchor: ArchiveAnchor | null = null;

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
    if (first > this.from && prevHash !== null) this.anchor = { sequence: first - 1n, hash: prevHash };
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

/**
 * The verdict on the whole chain from sequence 1: the archived part (1..`upTo`,
 * `upTo` at most the anchor's sequence) before the live rows' `live`.
 */
export function withArchivedPart(live: ChainVerdict, archived: ArchivedChainVerdict, anchor: ArchiveAnchor, upTo: bigint): ChainVerdict {
  const toSequence = upTo < anchor.sequence ? upTo : live.toSequence;
  if (archived.broken) return { ok: false, checked: archived.checked, fromSequence: 1n, toSequence, headHash: "", broken: archived.broken };
  if (upTo < anchor.sequence)
    return { ok: true, checked: archived.checked, fromSequence: 1n, toSequence, headHash: archived.lastHash, broken: null };
  return { ...live, fromSequence: 1n, checked: archived.checked + live.checked };
}
