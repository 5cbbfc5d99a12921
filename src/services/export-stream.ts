// ExportEvents as a stream of file chunks, for the RPC and for the plain HTTP
// download (export-http.ts).
//
// An export streams the file in chunks of about CHUNK_BYTES: the backend
// yields batches of records, each record becomes one NDJSON line or CSV row,
// and a chunk is handed on as soon as it is full. The chunks are an async
// generator, so they are only produced while the transport asks for the next
// one: a slow client pauses the export (HTTP/2 flow control, socket
// backpressure) and memory stays bounded by one backend batch plus one chunk,
// however many events match.
import type { Validator } from "@bufbuild/protovalidate";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ExportEventsRequest, ExportEventsRequestSchema, ExportFormat } from "../../gen/auditlog/v1/query_pb.js";
import { type StoredRecord, storedEventFromRecord } from "../domain/event-record.ts";
import { type EventQuery, restrictToActor, type SortDirection } from "../domain/event-query.ts";
import { csvHeader, csvRow, ndjsonLineOfRecord } from "../domain/export-format.ts";
import { ManifestBuilder, manifestLine } from "../domain/export-manifest.ts";
import type { SigningKey } from "../domain/signing.ts";
import { microsFromDate } from "../domain/timestamp.ts";
import { fieldError } from "../platform/error-details.ts";
import type { SearchBackend } from "../search/backend.ts";
import { asStored, type RecordView } from "./data-protection.ts";
import { asConnectError } from "./errors.ts";
import { directionOf, queryOf } from "./event-filter.ts";
import { validateRequest } from "./request-context.ts";
import type { TenantReadLimiter } from "./tenant-read-limiter.ts";

/** Target size of one chunk; a chunk is flushed once it reaches this, so it may exceed it by one line. */
export const CHUNK_BYTES = 64 * 1024;

export type ExportFormatName = "ndjson" | "csv";

export type ExportPlan = {
  tenantId: string;
  q: EventQuery;
  direction: SortDirection;
  /** null: every matching event. */
  limit: bigint | null;
  format: ExportFormatName;
  /** CSV: cells as stored, without neutralising formula-leading ones. */
  keepFormulas?: boolean;
  /** NDJSON: end with a signed manifest line (export-manifest.ts). */
  manifest?: boolean;
};

/**
 * How the caller uses the chunks. `consumedOnNext`: it is done with each
 * chunk once it asks for the next (the RPC has encoded it into its message,
 * the HTTP download has seen its write complete), so the backend may read
 * later pages into the memory of earlier ones; without it every chunk stays
 * the caller's to keep.
 */
export type ChunkUse = { consumedOnNext?: boolean };

/**
 * The file as a sequence of byte chunks of about CHUNK_BYTES (the CSV header
 * is in the first). Nothing is read from the backend before the first
 * next(), and every chunk is produced only when asked for. `view`: how the
 * caller sees each batch (decrypted or as stored, data-protection.ts); a
 * file with a manifest is always as stored, since its verifier recomputes
 * every hash, which covers the stored envelope (docs/HASH_CHAIN.md).
 */
export async function* exportChunks(
  backend: SearchBackend,
  plan: ExportPlan,
  signal: AbortSignal,
  signer: SigningKey | null = null,
  view: RecordView = asStored,
  use: ChunkUse = {},
): AsyncGenerator<Buffer, void, undefined> {
  const manifest = plan.manifest ? manifestBuilder(plan, signer) : null;
  // Plain NDJSON as stored needs nothing of each record: the backend's lines as they come, where it has them.
  const lines =
    plan.format === "ndjson" && !manifest && view === asStored
      ? backend.exportNdjson?.(plan.tenantId, plan.q, plan.direction, plan.limit, signal, { reuseBuffers: use.consumedOnNext === true })
      : null;
  if (lines) {
    yield* lineChunks(lines);
    return;
  }
  const show = manifest ? asStored : view;
  const csvOptions = { keepFormulas: plan.keepFormulas === true };
  const line = plan.format === "csv" ? (r: StoredRecord) => csvRow(storedEventFromRecord(r), csvOptions) : ndjsonLineOfRecord;
  let parts: string[] = plan.format === "csv" ? [csvHeader()] : [];
  let size = parts.length ? Buffer.byteLength(parts[0]!) : 0;
  for await (const batch of backend.export(plan.tenantId, plan.q, plan.direction, plan.limit, signal)) {
    for (const r of await show(batch)) {
      const text = line(r);
      manifest?.builder.add(r, text);
      parts.push(text);
      size += Buffer.byteLength(text);
      if (size >= CHUNK_BYTES) {
        const chunk = Buffer.from(parts.join(""));
        parts = [];
        size = 0;
        yield chunk;
      }
    }
  }
  if (manifest) parts.push(manifestLine(manifest.builder.sign(manifest.key, microsFromDate(new Date()))));
  if (parts.length) yield Buffer.from(parts.join(""));
}

const NEWLINE = 0x0a;

/**
 * `lines` (whole lines, each ending in "\n") as chunks of about CHUNK_BYTES
 * that end at a line's end, as exportChunks makes them from records. Parts
 * of the backend's buffers, not copies, when they are large enough; what is
 * left of a buffer short of a chunk is copied before the next is asked for,
 * so nothing of a buffer is held once the backend may use it again.
 */
async function* lineChunks(lines: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer, void, undefined> {
  let pending: Buffer[] = [];
  let size = 0;
  for await (const bytes of lines) {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    while (at < buf.length) {
      // The end of the line that takes the chunk to CHUNK_BYTES, or this buffer's end.
      const want = at + Math.max(0, CHUNK_BYTES - size);
      const nl = want < buf.length ? buf.indexOf(NEWLINE, want === 0 ? 0 : want - 1) : -1;
      const end = nl === -1 ? buf.length : nl + 1;
      pending.push(buf.subarray(at, end));
      size += end - at;
      at = end;
      if (size >= CHUNK_BYTES) {
        yield pending.length === 1 ? pending[0]! : Buffer.concat(pending);
        pending = [];
        size = 0;
      }
    }
    if (pending.length) pending = [Buffer.concat(pending, size)];
  }
  if (pending.length) yield pending[0]!;
}

/**
 * What a manifest needs, checked before anything is read. `complete`: no
 * filter, so the file is a contiguous range of the chain (all of it, or the
 * first or last `limit` events) and the verifier checks the links between
 * the events too; with a filter only each event on its own.
 */
function manifestBuilder(plan: ExportPlan, signer: SigningKey | null): { builder: ManifestBuilder; key: SigningKey } {
  if (!signer) throw new ConnectError("no checkpoint signing key is configured (AUDITLOG_CHECKPOINT_KEY_FILE)", Code.FailedPrecondition);
  const complete = plan.q.conditions.length === 0 && plan.q.actorId === undefined;
  return { builder: new ManifestBuilder({ tenantId: plan.tenantId, order: plan.direction, complete }), key: signer };
}

/**
 * exportChunks holding one of the tenant's expensive-read slots for as long
 * as the export runs, with a read that was too expensive (a page over its
 * statement timeout, the tenant's limit) answered as such rather than INTERNAL.
 */
export async function* boundedExportChunks(
  backend: SearchBackend,
  plan: ExportPlan,
  signal: AbortSignal,
  limiter?: TenantReadLimiter,
  signer: SigningKey | null = null,
  view: RecordView = asStored,
  use: ChunkUse = {},
): AsyncGenerator<Buffer, void, undefined> {
  let release: (() => void) | null = null;
  try {
    if (limiter) release = await limiter.acquire(plan.tenantId, signal);
    yield* exportChunks(backend, plan, signal, signer, view, use);
  } catch (err) {
    throw asConnectError(err);
  } finally {
    release?.();
  }
}

/**
 * Validates an ExportEventsRequest of `tenantId` and turns it into a plan
 * (INVALID_ARGUMENT on errors); `actorId`: only that actor's events (a User).
 */
export function exportPlan(validator: Validator, tenantId: string, req: ExportEventsRequest, actorId: string | null = null): ExportPlan {
  validateRequest(validator, ExportEventsRequestSchema, req);
  if (req.manifest && req.format === ExportFormat.CSV) throw fieldError("manifest", "only NDJSON exports carry a manifest");
  return {
    tenantId,
    q: restrictToActor(queryOf(req.filter), actorId),
    direction: directionOf(req.order),
    limit: req.limit > 0n ? req.limit : null,
    format: req.format === ExportFormat.CSV ? "csv" : "ndjson",
    keepFormulas: req.csvKeepFormulas,
    manifest: req.manifest,
  };
}
