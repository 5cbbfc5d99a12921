// Removes every document of a deleted tenant from the search index. This
// Elasticsearch build has no _delete_by_query (no `reindex` module), so it
// searches the tenant's documents (routed by tenant, filtered on tenant_id)
// a page at a time and deletes each page with a bulk request, until a search
// finds none. The reconciler cannot do it: it walks the tenants PostgreSQL
// still has, and a deleted tenant is not one of them.
import type { Client } from "@elastic/elasticsearch";

const PAGE = 1000;

/** Deletes the tenant's documents under `alias`; resolves with how many went. */
export async function deleteTenantDocuments(client: Client, alias: string, tenantId: string): Promise<number> {
  let deleted = 0;
  for (;;) {
    const res = await client.search({
      index: alias,
      routing: tenantId,
      size: PAGE,
      _source: false,
      query: { term: { tenant_id: tenantId } },
      ignore_unavailable: true,
      allow_no_indices: true,
    });
    const hits = res.hits.hits;
    if (hits.length === 0) return deleted;
    const operations = hits.map((h) => ({ delete: { _index: h._index, _id: h._id!, routing: tenantId } }));
    // wait_for: the next search must not find what this page deleted.
    const bulk = await client.bulk({ operations, refresh: "wait_for" });
    const failed = bulk.items.filter((it) => {
      const s = it.delete?.status ?? 0;
      return !(s >= 200 && s <= 299) && s !== 404;
    });
    if (failed.length > 0) {
      const f = failed[0]!.delete;
      throw new Error(
        `deleting ${failed.length} documents of tenant ${tenantId} failed, first ${f?._id}: ${f?.error?.type}: ${f?.error?.reason}`,
      );
    }
    deleted += hits.length;
  }
}
