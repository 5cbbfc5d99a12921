// Export from Elasticsearch: every matching event in order, in batches, from
// one point in time (a consistent view of the index for the whole export,
// however long it takes) paged with search_after. The point in time is
// opened on the read alias with the tenant as routing (so only the tenant's
// shards are held), the query always carries the tenant filter (esQuery),
// and the point in time is closed in a finally: at the end, on an error, when
// the consumer stops early (return() on the generator) and when `signal`
// aborts. A point in time that could not be closed (Elasticsearch
// unreachable, or an abort while it was being opened) expires after
// `keepAlive` without a search. One that expired because the consumer
// paused longer than `keepAlive` is replaced, and the export goes on.
import type { Client, estypes } from "@elastic/elasticsearch";
import type { EventQuery, SortDirection } from "../../domain/event-query.ts";
import type { StoredRecord } from "../../domain/event-record.ts";
import { esQuery, esSort } from "./query.ts";
import { esErrorTypes } from "./stats.ts";
import { type EventDocument, recordFromDocument } from "./event-document.ts";
import { READ_ALIAS } from "./index-template.ts";

export const ES_EXPORT_BATCH = 2000;
export const ES_EXPORT_KEEP_ALIVE = "1m";

export type EsExportOptions = {
  /** Read alias (default auditlog-events). */
  alias?: string;
  /** Hits per search (default 2000). */
  batchSize?: number;
  /** How long the point in time lives between two searches (default "1m"). */
  keepAlive?: string;
};

export async function* esExport(
  client: Client,
  tenantId: string,
  q: EventQuery,
  direction: SortDirection,
  limit: bigint | null,
  signal: AbortSignal,
  opts: EsExportOptions = {},
): AsyncGenerator<StoredRecord[], void, undefined> {
  const batchSize = opts.batchSize ?? ES_EXPORT_BATCH;
  const keepAlive = opts.keepAlive ?? ES_EXPORT_KEEP_ALIVE;
  if (limit !== null && limit <= 0n) return;
  signal.throwIfAborted();
  const open = async (s: AbortSignal) =>
    (await client.openPointInTime({ index: opts.alias ?? READ_ALIAS, keep_alive: keepAlive, routing: tenantId }, { signal: s })).id;
  let pitId: string;
  try {
    pitId = await open(signal);
  } catch (err) {
    // No monthly index yet: nothing has been indexed, so nothing matches.
    if (esErrorTypes(err).includes("index_not_found_exception")) return;
    throw err;
  }
  // Cancels a search still in flight when the export ends early.
  const inFlight = new AbortController();
  const searchSignal = AbortSignal.any([signal, inFlight.signal]);
  try {
    const query = esQuery(tenantId, q);
    const sort = esSort(direction);
    const search = (size: number, after: estypes.SortResults | undefined) =>
      client.search<EventDocument>(
        {
          pit: { id: pitId, keep_alive: keepAlive },
          size,
          query,
          sort,
          track_total_hits: false,
          // Derived search fields that a StoredRecord does not carry (open_text repeats every string of
          // the open content): neither fetched by Elasticsearch nor parsed here.
          _source_excludes: ["open_text", "id_hash"],
          ...(after ? { search_after: after } : {}),
        },
        { signal: searchSignal },
      );
    /** Null when the point in time has expired (every failure is a missing search context). */
    const attempt = async (size: number, after: estypes.SortResults | undefined) => {
      let r: estypes.SearchResponse<EventDocument>;
      try {
        r = await search(size, after);
      } catch (err) {
        if (esErrorTypes(err).includes("search_context_missing_exception")) return null;
        throw err;
      }
      if (r.pit_id) pitId = r.pit_id;
      const failures = r._shards.failures ?? [];
      if (r._shards.failed > 0 && failures.length > 0 && failures.every((f) => f.reason.type === "search_context_missing_exception")) {
        return null;
      }
      // A partial page would silently drop events from the file.
      if (r._shards.failed > 0 || r.timed_out) {
        throw new Error(`export incomplete: ${r._shards.failed} of ${r._shards.total} shards failed${r.timed_out ? ", timed out" : ""}`);
      }
      return r;
    };
    const page = async (size: number, after: estypes.SortResults | undefined) => {
      let r = await attempt(size, after);
      if (r === null) {
        // The point in time expired: the consumer took longer than keepAlive
        // over one batch (a slow download). Go on from a new one after the
        // same sort values; (occurred_at, sequence) is unique per tenant, so
        // nothing repeats or goes missing, though events indexed meanwhile
        // may now appear.
        await client.closePointInTime({ id: pitId }).catch(() => undefined);
        pitId = await open(searchSignal);
        r = await attempt(size, after);
        if (r === null) throw new Error("export failed: a new point in time was gone at once");
      }
      return { hits: r.hits.hits, size };
    };
    const sizeFor = (remaining: bigint | null) => (remaining !== null && remaining < BigInt(batchSize) ? Number(remaining) : batchSize);

    let remaining = limit;
    // One page ahead: Elasticsearch works on the next page while the
    // consumer formats and writes this one. At most two pages in memory.
    let next: ReturnType<typeof page> | null = page(sizeFor(remaining), undefined);
    while (next) {
      const { hits, size } = await next.catch((err: unknown) => {
        signal.throwIfAborted(); // the abort's reason rather than the client's "request aborted"
        throw err;
      });
      next = null;
      signal.throwIfAborted();
      if (hits.length === 0) return;
      const records = hits.map((h) => recordFromDocument(h._source!));
      if (remaining !== null) remaining -= BigInt(records.length);
      if (hits.length === size && (remaining === null || remaining > 0n)) {
        next = page(sizeFor(remaining), hits[hits.length - 1]!.sort);
        next.catch(() => undefined); // awaited in the next round, or abandoned when the consumer stops
      }
      yield records;
    }
  } finally {
    inFlight.abort();
    // Not with `signal`: an aborted export must still release the point in time.
    await client.closePointInTime({ id: pitId }).catch(() => undefined);
  }
}
