// Tenant-facing reads run in a read-only transaction as the auditlog_reader
// role with auditlog.tenant_id set, so row-level security filters every
// statement to the caller's tenant even if a query forgot its condition.
import type { Pool, PoolClient } from "pg";
import { inTransaction } from "./transaction.ts";

export function withTenantRead<T>(
  pool: Pool,
  tenantId: string,
  fn: (db: PoolClient) => Promise<T>,
  opts: { snapshot?: boolean } = {},
): Promise<T> {
  // One snapshot for multi-statement reads (a chain walk in pages).
  const begin = opts.snapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN READ ONLY";
  return inTransaction(pool, begin, async (db) => {
    await db.query("SET LOCAL ROLE auditlog_reader");
    await db.query("SELECT set_config('auditlog.tenant_id', $1, true)", [tenantId]);
    return fn(db);
  });
}
