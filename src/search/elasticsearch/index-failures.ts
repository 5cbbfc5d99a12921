// Documents Elasticsearch refuses, and how to tell them from a cluster that
// cannot take writes right now.
//
// The distinction decides whether the indexer may move a tenant's progress
// past an event. A refusal that is the document's own fault (its content
// does not fit the mapping) would be refused forever: holding progress before
// it would freeze the tenant's search for good, so it is recorded in
// `index_failures` and progress moves on. Anything that says the cluster,
// not the document, is the problem (overload, shard limits, blocks,
// security, a missing index) is retried and never skips an event: skipping
// there would silently drop good events from search.

export type ItemFailure = { status: number; type: string; reason: string };

export type FailureClass = "document" | "cluster";

/**
 * Error types that describe the cluster or the index, not the document,
 * even when the item's status is 400. `validation_exception` is not here:
 * it is also what a too-long document id gets; the shard-limit variant is
 * recognized by its reason.
 */
const CLUSTER_TYPES = new Set([
  "cluster_block_exception",
  "index_not_found_exception",
  "index_closed_exception",
  "invalid_index_name_exception",
  "resource_already_exists_exception",
  "es_rejected_execution_exception",
  "circuit_breaking_exception",
  "no_shard_available_action_exception",
  "unavailable_shards_exception",
  "primary_missing_action_exception",
  "process_cluster_event_timeout_exception",
  "security_exception",
  "version_conflict_engine_exception",
]);

/**
 * "document" only for a 400 whose type is not a cluster condition and whose
 * reason is not about shards (index creation refused at the shard limit
 * comes back per item as a 400 `validation_exception`: "... maximum normal
 * shards open"). Every other status (401/403, 404, 409, 429, 5xx, or none)
 * is "cluster". When in doubt, "cluster": a wrong "cluster" costs lag that
 * health reports; a wrong "document" loses an event from search.
 */
export function classifyItemFailure(f: ItemFailure): FailureClass {
  if (f.status !== 400) return "cluster";
  if (CLUSTER_TYPES.has(f.type)) return "cluster";
  if (/\bshards?\b/i.test(f.reason)) return "cluster";
  return "document";
}

/** Reasons are Elasticsearch's messages (they quote the field's value): bounded before storing. */
export const MAX_REASON_CHARS = 1000;

export function refusalReason(f: ItemFailure): string {
  const text = `${f.type}: ${f.reason}`;
  return text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS - 1)}…` : text;
}
