// At most `perKey` streams (Ingest client streams, ExportEvents) open at once
// per caller (an API key, or a token's subject) in this process. A stream
// beyond it is refused at once with RESOURCE_EXHAUSTED: a stream holds
// memory, a group-commit share or a read slot for as long as it is open, so
// one caller opening thousands would starve the others.
//
// Per replica: with N replicas behind a load balancer a caller can hold up to
// N x perKey streams in all.

export class TooManyStreamsError extends Error {
  readonly limit: number;

  constructor(limit: number) {
    super(
      `this caller already has ${limit} streams (Ingest, ExportEvents) open on this server, the most it may; ` +
        "finish one before opening another",
    );
    this.name = "TooManyStreamsError";
    this.limit = limit;
  }
}

export class StreamLimiter {
  private readonly perKey: number;
  private readonly open = new Map<string, number>();

  /** `perKey` 0: no limit. */
  constructor(perKey: number) {
    if (!(perKey >= 0) || !Number.isInteger(perKey)) throw new RangeError("perKey must be a whole number, 0 for no limit");
    this.perKey = perKey;
  }

  /** Streams of `key` open now. */
  active(key: string): number {
    return this.open.get(key) ?? 0;
  }

  /** Counts a stream of `key` and returns its release (later calls do nothing), or throws TooManyStreamsError. */
  acquire(key: string): () => void {
    if (this.perKey === 0) return () => {};
    const n = this.active(key);
    if (n >= this.perKey) throw new TooManyStreamsError(this.perKey);
    this.open.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.active(key) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }
}
