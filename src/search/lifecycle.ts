// The seam between the data lifecycle (src/lifecycle: retention, erasure)
// and a search index that holds copies of events. Elasticsearch implements
// it (elasticsearch/retention-documents.ts); without Elasticsearch there is
// nothing to remove and app.ts passes null.
import type { ErasureSubject } from "../domain/erasure.ts";
import type { StoredRecord } from "../domain/event-record.ts";

export type SearchLifecycle = {
  /** Deletes the tenant's documents received before `before`; how many went. */
  deleteReceivedBefore(tenantId: string, before: Date): Promise<number>;
  /** Deletes the tenant's documents of a sequence range; how many went. */
  deleteSequences(tenantId: string, first: bigint, last: bigint): Promise<number>;
  /** Deletes the monthly indices whose month ended at or before `before`. */
  dropIndicesBefore(before: Date): Promise<string[]>;
  /** Writes these events' documents again (after an erasure redacted them). */
  reindex(records: readonly StoredRecord[]): Promise<void>;
  /** Indexes archived events for search until the end of `until`'s day (RestoreArchive). */
  indexRestored(records: readonly StoredRecord[], until: Date): Promise<void>;
  /** Deletes the restored indices whose day has passed. */
  dropExpiredRestores(now: Date): Promise<string[]>;
  /** Deletes the tenant's restored documents that an erasure's subject is about (erasure.ts, matchesSubject). */
  deleteRestoredMatching(tenantId: string, subject: ErasureSubject): Promise<number>;
};
