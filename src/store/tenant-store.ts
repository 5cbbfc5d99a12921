import type { Pool } from "pg";
import { GENESIS_HASH } from "../domain/hash-chain.ts";
import { SYSTEM_SCOPE_BEGIN } from "./system-scope.ts";
import { inTransaction } from "./transaction.ts";

export type TenantRow = { id: string; name: string; created_at: Date };

export class TenantExistsError extends Error {}

export class TenantStore {
  private readonly pool: Pool;

  constructor(pool: Pool) {
    this.pool = pool;
  }

  /** Creates the tenant and the head of its hash chain together. */
  create(id: string, name: string): Promise<TenantRow> {
    // System scope: no tenant is set while the tenant is being made.
    return inTransaction(this.pool, SYSTEM_SCOPE_BEGIN, async (db) => {
      const r = await db.query<TenantRow>(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id, name, created_at",
        [id, name],
      );
      if (!r.rows[0]) throw new TenantExistsError(`tenant ${id} already exists`);
      await db.query("INSERT INTO chain_heads (tenant_id, sequence, hash) VALUES ($1, 0, $2)", [id, GENESIS_HASH]);
      return r.rows[0];
    });
  }

  async list(): Promise<TenantRow[]> {
    return (await this.pool.query<TenantRow>("SELECT id, name, created_at FROM tenants ORDER BY id")).rows;
  }

  async exists(id: string): Promise<boolean> {
    return ((await this.pool.query("SELECT 1 FROM tenants WHERE id = $1", [id])).rowCount ?? 0) > 0;
  }
}
