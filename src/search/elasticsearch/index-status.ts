// GetIndexStatus with Elasticsearch: read from PostgreSQL alone, so any
// replica answers, leading the indexer or not.
import type { Pool } from "pg";
import { listRefusals, tenantProgress } from "../../store/index-progress.ts";
import type { IndexStatus } from "../backend.ts";

/** How many refusals GetIndexStatus lists. */
export const RECENT_REFUSALS = 10;

/**
 * committed = chain head, indexed = index_progress, lag in events and in
 * seconds since the first unindexed event was received, the latest
 * reconcile report, and the tenant's refused documents.
 */
export async function readIndexStatus(pool: Pool, tenantId: string): Promise<IndexStatus> {
  const p = await tenantProgress(pool, tenantId);
  const { count, recent } = await listRefusals(pool, tenantId, RECENT_REFUSALS);
  const refused = { refusedDocuments: count, recentRefusals: recent };
  if (!p) {
    return {
      backend: "elasticsearch",
      committedPosition: 0n,
      indexedPosition: 0n,
      lagEvents: 0n,
      lagSeconds: 0,
      lastReconcile: null,
      ...refused,
    };
  }
  const lagEvents = p.committed > p.indexed ? p.committed - p.indexed : 0n;
  return {
    backend: "elasticsearch",
    committedPosition: p.committed,
    indexedPosition: p.indexed,
    lagEvents,
    lagSeconds: lagEvents > 0n ? Math.max(0, p.lagSeconds ?? 0) : 0,
    lastReconcile: p.lastReconcile,
    ...refused,
  };
}
