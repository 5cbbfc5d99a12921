// The search index side of retention and erasure (docs/ARCHITECTURE.md,
// "Data lifecycle"). This Elasticsearch build has no _delete_by_query, so a
// tenant's documents go by a search (routed by tenant) and a bulk delete with
// the same routing, a page at a time, until a search finds none. Whole
// monthly indices go when every tenant's searchable window has passed them.
import type { Client } from "@elastic/elasticsearch";
import type { StoredRecord } from "../../domain/event-record.ts";
import { documentFromRecord, documentId } from "./event-document.ts";
import { type IndexNames, indexNames } from "./index-names.ts";
import { RECEIVED_MONTH_INFIX } from "./index-template.ts";
import type { SearchLifecycle } from "../lifecycle.ts";

const PAGE = 1000;

export class ElasticsearchLifecycle implements SearchLifecycle {
  private readonly client: Client;
  private readonly names: IndexNames;

  constructor(client: Client, prefix?: string) {
    this.client = client;
    this.names = indexNames(prefix);
  }

  deleteReceivedBefore(tenantId: string, before: Date): Promise<number> {
    return this.deleteMatching(tenantId, { range: { received_at: { lt: before.toISOString() } } });
  }

  deleteSequences(tenantId: string, first: bigint, last: bigint): Promise<number> {
    return this.deleteMatching(tenantId, { range: { sequence: { gte: first.toString(), lte: last.toString() } } });
  }

  async dropIndicesBefore(before: Date): Promise<string[]> {
    const res = await this.client.indices.get({ index: this.names.pattern, allow_no_indices: true, ignore_unavailable: true });
    const infix = `${this.names.prefix}-${RECEIVED_MONTH_INFIX}`;
    const dropped: string[] = [];
    for (const name of Object.keys(res)) {
      const m = /^(\d{4})\.(\d{2})$/.exec(name.startsWith(infix) ? name.slice(infix.length) : "");
      if (!m) continue;
      const monthEnd = new Date(Date.UTC(Number(m[1]), Number(m[2]), 1));
      if (monthEnd > before) continue;
      await this.client.indices.delete({ index: name, ignore_unavailable: true });
      dropped.push(name);
    }
    return dropped;
  }

  async reindex(records: readonly StoredRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i += PAGE) {
      const operations: unknown[] = [];
      for (const r of records.slice(i, i + PAGE)) {
        const doc = documentFromRecord(r);
        operations.push(
          { index: { _index: this.names.indexFor(doc.received_at), _id: documentId(r.tenantId, r.id), routing: r.tenantId } },
          doc,
        );
      }
      const res = await this.client.bulk({ operations, refresh: "wait_for" });
      const failed = res.items.find((it) => it.index?.error);
      if (failed) throw new Error(`re-indexing erased events failed: ${failed.index?._id}: ${failed.index?.error?.reason}`);
    }
  }

  private async deleteMatching(tenantId: string, condition: object): Promise<number> {
    let deleted = 0;
    for (;;) {
      const res = await this.client.search({
        index: this.names.alias,
        routing: tenantId,
        size: PAGE,
        _source: false,
        query: { bool: { filter: [{ term: { tenant_id: tenantId } }, condition as never] } },
        ignore_unavailable: true,
        allow_no_indices: true,
      });
      const hits = res.hits.hits;
      if (hits.length === 0) return deleted;
      const operations = hits.map((h) => ({ delete: { _index: h._index, _id: h._id!, routing: tenantId } }));
      // wait_for: the next search must not find what this page deleted.
      const bulk = await this.client.bulk({ operations, refresh: "wait_for" });
      const failed = bulk.items.filter((it) => {
        const s = it.delete?.status ?? 0;
        return !(s >= 200 && s <= 299) && s !== 404;
      });
      if (failed.length > 0) {
        const f = failed[0]!.delete;
        throw new Error(`deleting ${failed.length} documents of tenant ${tenantId} failed, first ${f?._id}: ${f?.error?.reason}`);
      }
      deleted += hits.length;
    }
  }
}
