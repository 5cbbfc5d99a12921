// One lifecycle operation at a time across replicas: a retention round, an
// erasure and a restore all read or write archive objects, and must not
// interleave (an erasure that scanned the archive before a round wrote a new
// object from not-yet-erased rows would miss it). A session advisory lock on
// a connection of its own: the retention job tries it and skips its round
// when it is taken; erasure, restore and a tenant's deletion wait for it.
import pg from "pg";
import type { Pool } from "pg";

/** Advisory lock key of the data lifecycle. */
export const LIFECYCLE_LOCK_KEY = 7_428_113_011n;

/** Runs `fn` holding the lock; `wait` false: resolves null at once when another holds it. */
export async function withLifecycleLock<T>(pool: Pool, key: bigint, wait: boolean, fn: () => Promise<T>): Promise<T | null> {
  const lock = new pg.Client(pool.options);
  // Losing the lock connection ends the claim; the work's own queries fail or finish on their own.
  lock.on("error", () => {});
  await lock.connect();
  try {
    if (wait) await lock.query("SELECT pg_advisory_lock($1)", [key.toString()]);
    else {
      const got = await lock.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [key.toString()]);
      if (!got.rows[0]?.ok) return null;
    }
    return await fn();
  } finally {
    await lock.end().catch(() => {});
  }
}
