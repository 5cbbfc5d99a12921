// A deleted tenant's archive objects (docs/ARCHITECTURE.md, "Tenant
// lifecycle"): DeleteTenant deletes every object under the tenant's prefix
// (`<prefix><tenant>/`: the windows and their manifests) once the
// confirmation is checked and before the tenant's rows go, in the same
// PostgreSQL transaction's lifetime, while it holds the lifecycle lock so
// that no retention round writes a new object for the tenant meanwhile (nor
// an erasure or restore reads one). A deletion killed halfway leaves the
// tenant in PostgreSQL, still suspended with its deletion pending; calling
// DeleteTenant again (a new confirmation if the first expired) lists what
// is left and finishes.
import type { Pool } from "pg";
import type { ArchiveStore } from "../archive/object-store.ts";
import { tenantArchivePrefix } from "../domain/retention.ts";
import { LIFECYCLE_LOCK_KEY, withLifecycleLock } from "./lifecycle-lock.ts";

/** Deletions in flight at once: enough to hide round trips, few enough for any S3-compatible server. */
const CONCURRENCY = 8;

export class TenantArchive {
  private readonly pool: Pool;
  private readonly archive: ArchiveStore;
  private readonly lockKey: bigint;

  constructor(pool: Pool, archive: ArchiveStore, lockKey: bigint = LIFECYCLE_LOCK_KEY) {
    this.pool = pool;
    this.archive = archive;
    this.lockKey = lockKey;
  }

  /** Runs `fn` when no retention round, erasure or restore is running, and keeps them out until it is done. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return (await withLifecycleLock(this.pool, this.lockKey, true, fn)) as T;
  }

  /** Deletes every archive object of the tenant; resolves with how many there were. */
  async deleteObjects(tenantId: string): Promise<number> {
    const keys = await this.archive.list(tenantArchivePrefix(this.archive.prefix, tenantId));
    let next = 0;
    let failure: { err: unknown } | null = null;
    // On a failure, the deletions in flight finish and no new one starts: nothing is left running when the caller gives up.
    const worker = async () => {
      while (failure === null && next < keys.length) {
        const key = keys[next++]!;
        try {
          await this.archive.delete(key);
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, keys.length) }, worker));
    if (failure) throw (failure as { err: unknown }).err;
    return keys.length;
  }
}
