// Buffers an export's pages are read into, used again once the export's
// consumer is done with a page. A page of 2,000 lines is a few MB; at
// 50,000 lines a second a new buffer per page allocates about 90 MB/s
// outside V8's heap, and V8 frees such memory only some 64 MB after its
// last full collection: the export added 54-61 MB to the service's peak
// RSS, 41-45 MB with reuse (docs/PERFORMANCE.md, "Round four"). Reused, an
// export holds the pages in flight and a few free ones.

/** Smallest buffer handed out. */
export const MIN_PAGE_BUFFER = 64 * 1024;

/**
 * Whether the memory under `bytes` may be kept for reuse: only an
 * ArrayBuffer larger than Node's shared pool (`Buffer.poolSize`, 64 KB on
 * Node 24), which small Buffers are slices of and others write into.
 */
function reusable(bytes: Uint8Array): boolean {
  return bytes.buffer instanceof ArrayBuffer && bytes.buffer.byteLength > Math.max(MIN_PAGE_BUFFER, Buffer.poolSize);
}

export class PageBuffers {
  private readonly free: Buffer[] = [];
  private readonly keep: number;

  /** `keep`: most free buffers held. */
  constructor(keep: number) {
    this.keep = keep;
  }

  /**
   * A buffer of at least `size` bytes (and MIN_PAGE_BUFFER): the smallest
   * free one that fits, or a new one a quarter larger, so that the next
   * pages, about as large as the last, fit it too.
   */
  take(size: number): Buffer {
    const want = Math.max(size, MIN_PAGE_BUFFER);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i]!.length;
      if (n >= want && (best === -1 || n < this.free[best]!.length)) best = i;
    }
    return best === -1 ? Buffer.allocUnsafe(Math.ceil(want * 1.25)) : this.free.splice(best, 1)[0]!;
  }

  /**
   * Gives back the whole buffer under `bytes` (a view of a buffer from
   * take(), or of one the caller allocated itself), which nobody may use
   * any more. Kept when there is room (else in place of a smaller free one).
   */
  give(bytes: Uint8Array): void {
    if (!reusable(bytes)) return;
    const whole = Buffer.from(bytes.buffer as ArrayBuffer);
    if (this.free.some((b) => b.buffer === whole.buffer)) return;
    if (this.free.length < this.keep) {
      this.free.push(whole);
      return;
    }
    let smallest = 0;
    for (let i = 1; i < this.free.length; i++) if (this.free[i]!.length < this.free[smallest]!.length) smallest = i;
    if (this.free.length > 0 && this.free[smallest]!.length < whole.length) this.free[smallest] = whole;
  }

  /** Free buffers held (tests). */
  get size(): number {
    return this.free.length;
  }
}
