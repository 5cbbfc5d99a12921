// The search index side of retention and erasure (docs/ARCHITECTURE.md,
// "Data lifecycle"). This Elasticsearch build has no _delete_by_query, so a
// tenant's documents go by a search (routed by tenant) and a bulk delete with
// the same routing, a page at a time, until a search finds none. Whole
// monthly indices go when every tenant's searchable window has passed them.
import type { Client } from "@elastic/elasticsearch";
import { ERASABLE_FIELDS, type ErasureSubject } from "../../domain/erasure.ts";
import type { StoredRecord } from "../../domain/event-record.ts";
import { documentFromRecord, documentId } from "./event-document.ts";
import { type IndexNames, indexNames } from "./index-names.ts";
import { RECEIVED_MONTH_INFIX } from "./index-template.ts";
import type { SearchLifecycle } from "../lifecycle.ts";

const PAGE = 1000;

/**
 * The documents an erasure's subject is about, as matchesSubject defines
 * them: the envelope fields are keywords under the same dotted names, and a
 * term query on a `flattened` field's root matches any of its leaf values,
 * on `metadata.<path>` the values at that path, both by their text.
 */
export function subjectQuery(s: ErasureSubject): object {
  switch (s.kind) {
    case "field":
      return { term: { [s.field]: s.value } };
    case "metadata":
      return { term: { [`metadata.${s.path.join(".")}`]: s.value } };
    case "any": {
      const fields = [...Object.keys(ERASABLE_FIELDS), "metadata", "changes.before", "changes.after"];
      return { bool: { should: fields.map((f) => ({ term: { [f]: s.value } })), minimum_should_match: 1 } };
    }
  }
}

export class ElasticsearchLifecycle implements SearchLifecycle {
  private readonly client: Client;
  private readonly names: IndexNames;

  /** The monthly indices (`<prefix>-received-*`). */
  private readonly monthly: string;
  /** Restored indices: `<prefix>-restored-until-YYYY.MM.DD`. */
  private readonly restoredPrefix: string;

  constructor(client: Client, prefix?: string) {
    this.client = client;
    this.names = indexNames(prefix);
    this.monthly = `${this.names.prefix}-${RECEIVED_MONTH_INFIX}*`;
    this.restoredPrefix = `${this.names.prefix}-restored-until-`;
  }

  // Only the monthly indices: restored documents (below) are older than the
  // window by nature and go with their own index.
  deleteReceivedBefore(tenantId: string, before: Date): Promise<number> {
    return this.deleteMatching(this.monthly, tenantId, { range: { received_at: { lt: before.toISOString() } } });
  }

  deleteSequences(tenantId: string, first: bigint, last: bigint): Promise<number> {
    return this.deleteMatching(this.monthly, tenantId, { range: { sequence: { gte: first.toString(), lte: last.toString() } } });
  }

  deleteRestoredMatching(tenantId: string, subject: ErasureSubject): Promise<number> {
    return this.deleteMatching(`${this.restoredPrefix}*`, tenantId, subjectQuery(subject));
  }

  async indexRestored(records: readonly StoredRecord[], until: Date): Promise<void> {
    const day = until.toISOString().slice(0, 10).replaceAll("-", ".");
    // The template of `<prefix>-*` applies: same mappings, same read alias.
    await this.write(records, () => `${this.restoredPrefix}${day}`);
  }

  async dropExpiredRestores(now: Date): Promise<string[]> {
    const res = await this.client.indices.get({ index: `${this.restoredPrefix}*`, allow_no_indices: true, ignore_unavailable: true });
    const today = now.toISOString().slice(0, 10).replaceAll("-", ".");
    const dropped: string[] = [];
    for (const name of Object.keys(res)) {
      const day = name.slice(this.restoredPrefix.length);
      if (!/^\d{4}\.\d{2}\.\d{2}$/.test(day) || day >= today) continue;
      await this.client.indices.delete({ index: name, ignore_unavailable: true });
      dropped.push(name);
    }
    return dropped;
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

  reindex(records: readonly StoredRecord[]): Promise<void> {
    return this.write(records, (receivedAt) => this.names.indexFor(receivedAt));
  }

  private async write(records: readonly StoredRecord[], indexOf: (receivedAt: string) => string): Promise<void> {
    for (let i = 0; i < records.length; i += PAGE) {
      const operations: unknown[] = [];
      for (const r of records.slice(i, i + PAGE)) {
        const doc = documentFromRecord(r);
        operations.push({ index: { _index: indexOf(doc.received_at), _id: documentId(r.tenantId, r.id), routing: r.tenantId } }, doc);
      }
      const res = await this.client.bulk({ operations, refresh: "wait_for" });
      const failed = res.items.find((it) => it.index?.error);
      if (failed) throw new Error(`indexing events failed: ${failed.index?._id}: ${failed.index?.error?.reason}`);
    }
  }

  private async deleteMatching(index: string, tenantId: string, condition: object): Promise<number> {
    let deleted = 0;
    for (;;) {
      const res = await this.client.search({
        index,
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
