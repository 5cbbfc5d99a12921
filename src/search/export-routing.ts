// Exports with Elasticsearch configured: read from PostgreSQL, the system of
// record, when the query needs nothing that only the index answers well.
//
// A query of envelope filters and a time range (no free text, no metadata)
// is one walk of the tenant's page-order index in PostgreSQL, whose export
// streams lines that PostgreSQL builds itself (copy-export.ts): 2.9 to 3.4
// times the rows per second of paging Elasticsearch on the same machine
// (docs/PERFORMANCE.md, "Round seven"). Free text and metadata would make
// PostgreSQL build every row's open text over the whole range; those
// exports stay with the index.
//
// The file from PostgreSQL holds every committed event that matches,
// including any not yet indexed and any the index refused (GetIndexStatus
// reports those): for an auditor, more complete than the index. Search,
// stats and index status are the index's.
import type { EventQuery } from "../domain/event-query.ts";
import type { SearchBackend } from "./backend.ts";

/** True when the PostgreSQL backend exports `q` without building any row's open text. */
export function exportableFromRecords(q: EventQuery): boolean {
  return q.conditions.every((c) => c.kind !== "text" && c.kind !== "metadata");
}

/**
 * `index` for everything but the exports that `records` (the PostgreSQL
 * backend) serves better. The lines of the others are made from the index's
 * records by the export itself (exportNdjson answers null).
 */
export function withExportsFromRecords(index: SearchBackend, records: SearchBackend): SearchBackend {
  return {
    name: index.name,
    search: (...args) => index.search(...args),
    export: (tenantId, q, ...rest) => (exportableFromRecords(q) ? records : index).export(tenantId, q, ...rest),
    exportNdjson: (tenantId, q, ...rest) => (exportableFromRecords(q) ? (records.exportNdjson?.(tenantId, q, ...rest) ?? null) : null),
    stats: (...args) => index.stats(...args),
    waitForPosition: (...args) => index.waitForPosition(...args),
    indexStatus: (...args) => index.indexStatus(...args),
  };
}
