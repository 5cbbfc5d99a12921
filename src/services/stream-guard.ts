// Bounds on how long a stream may run and, for a client stream, how long it
// may go without a message. When one passes, the handler's signal aborts
// with a DEADLINE_EXCEEDED error that says which bound, so every piece of
// work that observes the signal (reads, waits for the rate or the group
// commit) stops, and the caller sees that error rather than whatever the
// aborted work threw.
import { Code, ConnectError } from "@connectrpc/connect";

export type StreamBounds = {
  /** Most milliseconds a stream may run; 0: no bound. */
  maxDurationMs: number;
  /** Most milliseconds a client stream may wait for its next message; 0: no bound. */
  idleMs: number;
};

const seconds = (ms: number) => `${Number((ms / 1000).toFixed(3))} s`;

export class StreamGuard {
  /** Aborts when the caller's signal does, or when a bound passes. */
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly bounds: StreamBounds;
  private readonly what: string;
  private durationTimer: ReturnType<typeof setTimeout> | undefined;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly onCallerAbort: () => void;
  private readonly caller: AbortSignal;
  private ownReason: ConnectError | null = null;

  /** `what`: the stream, for messages ("this Ingest stream"). */
  constructor(caller: AbortSignal, bounds: StreamBounds, what: string) {
    this.bounds = bounds;
    this.what = what;
    this.caller = caller;
    this.signal = this.controller.signal;
    this.onCallerAbort = () => this.controller.abort(caller.reason);
    if (caller.aborted) this.onCallerAbort();
    else caller.addEventListener("abort", this.onCallerAbort, { once: true });
    if (bounds.maxDurationMs > 0) {
      this.durationTimer = setTimeout(
        () => this.fire(`${what} reached its longest allowed duration (${seconds(bounds.maxDurationMs)} per stream); open a new stream`),
        bounds.maxDurationMs,
      );
    }
  }

  /** The bound that ended the stream, if one did. */
  get tripped(): ConnectError | null {
    return this.ownReason;
  }

  /** `err`, unless a bound ended the stream: then that bound's error (what aborted work throws says less). */
  explain(err: unknown): unknown {
    return this.tripped ?? err;
  }

  /**
   * The client stream's messages; while one is awaited for longer than the
   * idle bound, the stream ends. Each message waited for also ends when the
   * signal aborts.
   */
  async *watch<T>(messages: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
    const it = messages[Symbol.asyncIterator]();
    for (;;) {
      if (this.bounds.idleMs > 0) {
        this.idleTimer = setTimeout(
          () => this.fire(`${this.what} sent no message for ${seconds(this.bounds.idleMs)}; events not acknowledged must be sent again`),
          this.bounds.idleMs,
        );
      }
      let r: IteratorResult<T>;
      try {
        r = await abortable(it.next(), this.signal);
      } finally {
        clearTimeout(this.idleTimer);
      }
      if (r.done) return;
      yield r.value;
    }
  }

  /** Stops the timers and lets go of the caller's signal; call when the stream ends. */
  dispose(): void {
    clearTimeout(this.durationTimer);
    clearTimeout(this.idleTimer);
    this.caller.removeEventListener("abort", this.onCallerAbort);
  }

  private fire(message: string): void {
    if (this.signal.aborted) return;
    this.ownReason = new ConnectError(message, Code.DeadlineExceeded);
    this.controller.abort(this.ownReason);
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
