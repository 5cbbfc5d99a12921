// The owner's cross-tenant work under forced row-level security
// (migrations/0004_force_rls.sql): a transaction that sets auditlog.scope to
// 'system' and no tenant passes the owner's `system_scope` policy. Only code
// that is cross-tenant by design runs here (writer, tenant creation, indexer,
// reconciler); tenant-facing reads use withTenantRead.
import type { Pool, PoolClient, QueryResult, QueryResultRow } from "pg";
import { inTransaction } from "./transaction.ts";

/** BEGIN plus the scope, in one round trip (a simple query may hold several statements). */
export const SYSTEM_SCOPE_BEGIN = "BEGIN; SELECT set_config('auditlog.scope', 'system', true)";

export function withSystemScope<T>(pool: Pool, fn: (db: PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(pool, SYSTEM_SCOPE_BEGIN, fn);
}

/** One statement in system scope (pool.query for the tables under row-level security). */
export function systemQuery<R extends QueryResultRow = QueryResultRow>(
  pool: Pool,
  text: string,
  values?: unknown[],
): Promise<QueryResult<R>> {
  return withSystemScope(pool, (db) => db.query<R>(text, values));
}
