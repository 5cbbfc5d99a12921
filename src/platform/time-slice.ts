// Long synchronous work (decoding, validating and sealing a 1,000-event
// request) in short slices of time, with a turn of the event loop between
// two: every other request, of every tenant, waits for the slice that is
// running whenever it needs the event loop, and a request needs it several
// times (its frames, its handler, each round trip to PostgreSQL). Slices by
// time rather than by count: what an event costs varies a hundredfold with
// its size. Not for work inside a transaction: a turn there runs whatever
// else is ready while the transaction holds its locks. docs/PERFORMANCE.md,
// "Tenant isolation -> Round eight".
import { setImmediate as nextTurn } from "node:timers/promises";

/** How long a slice of such work may hold the event loop, in ms. */
export const SLICE_MS = 0.5;

export class TimeSlice {
  private readonly ms: number;
  private readonly now: () => number;
  private began: number;

  constructor(ms = SLICE_MS, now: () => number = () => performance.now()) {
    this.ms = ms;
    this.now = now;
    this.began = now();
  }

  /** Whether this slice has run its time: the caller should `yield` before its next piece of work. */
  get due(): boolean {
    return this.now() - this.began >= this.ms;
  }

  /** A turn of the event loop, then a new slice. */
  async yield(): Promise<void> {
    await nextTurn();
    this.began = this.now();
  }
}
