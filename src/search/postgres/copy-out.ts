// `COPY ... TO STDOUT` read into one buffer, for a caller that needs the
// whole output at once (an export page, copy-export.ts).
//
// A query object that node-pg runs like any query (client.query(submittable))
// and that receives each CopyData message through handleCopyData, which the
// client calls for the query running. Its bytes are copied at once into one
// growing buffer (the message is a view of the client's read buffer, which
// the client reuses). pg-copy-streams' COPY TO stream would cost two more
// allocations of every byte (its own chunks, then joining them), and at tens
// of MB/s the garbage collector, not the copying, is what that costs
// (docs/PERFORMANCE.md, "Round two, continued").
import type { Connection, Submittable } from "pg";
import { MIN_PAGE_BUFFER, type PageBuffers } from "./page-buffers.ts";

class CopyOut implements Submittable {
  private readonly text: string;
  private readonly buffers: PageBuffers | undefined;
  private buf: Buffer;
  private size = 0;
  private failed: Error | null = null;
  readonly done: Promise<Buffer>;
  private resolve!: (b: Buffer) => void;
  private reject!: (e: Error) => void;

  constructor(text: string, capacity: number, buffers: PageBuffers | undefined) {
    this.text = text;
    this.buffers = buffers;
    this.buf = this.allocate(capacity);
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  submit(connection: Connection): void {
    connection.query(this.text);
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    const chunk = msg.chunk;
    if (this.size + chunk.length > this.buf.length) {
      const grown = this.allocate(Math.max(this.buf.length * 2, this.size + chunk.length));
      this.buf.copy(grown, 0, 0, this.size);
      this.buffers?.give(this.buf);
      this.buf = grown;
    }
    chunk.copy(this.buf, this.size);
    this.size += chunk.length;
  }

  private allocate(size: number): Buffer {
    return this.buffers ? this.buffers.take(size) : Buffer.allocUnsafe(Math.max(size, MIN_PAGE_BUFFER));
  }

  /** The server's error, or the connection's end (after which no ReadyForQuery comes). */
  handleError(err: Error): void {
    this.failed ??= err;
    this.reject(err);
  }

  handleReadyForQuery(): void {
    if (this.failed) this.reject(this.failed);
    else this.resolve(this.buf.subarray(0, this.size));
  }

  // What a COPY TO never sends, or sends without anything to do here.
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  /** A COPY FROM: refused to the server, whose error then ends the query. */
  handleCopyInResponse(connection: Connection): void {
    // A method of node-pg's Connection that its type declarations leave out.
    (connection as Connection & { sendCopyFail(message: string): void }).sendCopyFail("copyOut reads COPY TO only");
  }
}

/**
 * The whole output of `sql` (a `COPY ... TO STDOUT`) on `db`, in one buffer;
 * `capacity`: the size to start with (the previous page's, say), which it
 * outgrows by doubling. The buffers come from `buffers` when given (and
 * one outgrown goes back to it). Rejects with the server's error.
 */
export function copyOut(db: { query(q: Submittable): unknown }, sql: string, capacity = 0, buffers?: PageBuffers): Promise<Buffer> {
  const q = new CopyOut(sql, capacity, buffers);
  db.query(q);
  return q.done;
}
