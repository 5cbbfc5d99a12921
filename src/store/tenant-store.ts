// Tenants and their lifecycle. The tenants table is under forced row-level
// security (migrations/0007): tenant administration spans tenants, so it runs
// in system scope; the suspension check of authentication reads one tenant's
// state through the function made only for it.
import { timingSafeEqual } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import type { Pool, PoolClient } from "pg";
import { GENESIS_HASH } from "../domain/hash-chain.ts";
import { SYSTEM_SCOPE_BEGIN, systemQuery, withSystemScope } from "./system-scope.ts";
import { inTransaction } from "./transaction.ts";

export type TenantRow = {
  id: string;
  name: string;
  created_at: Date;
  settings: JsonObject;
  updated_at: Date | null;
  suspended_at: Date | null;
  deletion_expires_at: Date | null;
};

const COLUMNS = "id, name, created_at, settings, updated_at, suspended_at, deletion_expires_at";

export class TenantExistsError extends Error {}

/** No tenant with this id. */
export class TenantNotFoundError extends Error {}

/** The tenant is not in the state the lifecycle step needs (e.g. deletion of a tenant not suspended). */
export class TenantLifecycleError extends Error {}

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
        `INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING ${COLUMNS}`,
        [id, name],
      );
      if (!r.rows[0]) throw new TenantExistsError(`tenant ${id} already exists`);
      await db.query("INSERT INTO chain_heads (tenant_id, sequence, hash) VALUES ($1, 0, $2)", [id, GENESIS_HASH]);
      return r.rows[0];
    });
  }

  async list(): Promise<TenantRow[]> {
    return (await systemQuery<TenantRow>(this.pool, `SELECT ${COLUMNS} FROM tenants ORDER BY id`)).rows;
  }

  async get(id: string): Promise<TenantRow | null> {
    return (await systemQuery<TenantRow>(this.pool, `SELECT ${COLUMNS} FROM tenants WHERE id = $1`, [id])).rows[0] ?? null;
  }

  async exists(id: string): Promise<boolean> {
    return (await this.get(id)) !== null;
  }

  /** When the tenant was suspended (null: it is not), through the authentication lookup; undefined: no such tenant. */
  async suspendedAt(id: string): Promise<Date | null | undefined> {
    const r = await this.pool.query<{ suspended_at: Date | null }>("SELECT suspended_at FROM auditlog_tenant_state($1)", [id]);
    return r.rows[0] ? r.rows[0].suspended_at : undefined;
  }

  /** Changes the name and/or the settings (undefined: unchanged). */
  async update(id: string, change: { name?: string; settings?: JsonObject }): Promise<TenantRow> {
    const r = await systemQuery<TenantRow>(
      this.pool,
      `UPDATE tenants SET name = coalesce($2, name), settings = coalesce($3::jsonb, settings), updated_at = now()
        WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, change.name ?? null, change.settings === undefined ? null : JSON.stringify(change.settings)],
    );
    return found(id, r.rows[0]);
  }

  /** Suspends (keeping the first suspension time) or resumes; resuming also cancels a pending deletion. */
  async setSuspended(id: string, suspended: boolean): Promise<TenantRow> {
    const r = await systemQuery<TenantRow>(
      this.pool,
      suspended
        ? `UPDATE tenants SET suspended_at = coalesce(suspended_at, now()), updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`
        : `UPDATE tenants SET suspended_at = NULL, deletion_token_hash = NULL, deletion_expires_at = NULL, updated_at = now()
            WHERE id = $1 RETURNING ${COLUMNS}`,
      [id],
    );
    return found(id, r.rows[0]);
  }

  /** Stores the hash of a deletion confirmation token valid until `expiresAt`; the tenant must be suspended. */
  requestDeletion(id: string, tokenHash: Buffer, expiresAt: Date): Promise<TenantRow> {
    return withSystemScope(this.pool, async (db) => {
      const t = await lockTenant(db, id);
      if (!t.suspended_at) throw new TenantLifecycleError(`tenant "${id}" must be suspended before its deletion is requested`);
      const r = await db.query<TenantRow>(
        `UPDATE tenants SET deletion_token_hash = $2, deletion_expires_at = $3 WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, tokenHash, expiresAt],
      );
      return r.rows[0]!;
    });
  }

  /**
   * Deletes the tenant and its rows in every table that has a tenant_id
   * column (found in the catalogue, so tables added later are included), in
   * one transaction, if `tokenHash` is the pending confirmation's and it has
   * not expired. Returns how many rows went, per table. `confirmed` runs once
   * the confirmation is accepted, before any row goes (the tenant row stays
   * locked meanwhile); if it throws, nothing is deleted here.
   */
  delete(id: string, tokenHash: Buffer, now = new Date(), confirmed?: () => Promise<void>): Promise<Record<string, number>> {
    return withSystemScope(this.pool, async (db) => {
      const t = await lockTenant(db, id);
      const stored = (await db.query<{ h: Buffer | null }>("SELECT deletion_token_hash AS h FROM tenants WHERE id = $1", [id])).rows[0]!.h;
      if (!t.suspended_at || !stored || !t.deletion_expires_at) {
        throw new TenantLifecycleError(`tenant "${id}" has no pending deletion; suspend it and call RequestTenantDeletion first`);
      }
      if (t.deletion_expires_at <= now) {
        throw new TenantLifecycleError(`the deletion confirmation of tenant "${id}" has expired; request a new one`);
      }
      if (stored.length !== tokenHash.length || !timingSafeEqual(stored, tokenHash)) {
        throw new TenantLifecycleError(`confirmation_token: not the pending confirmation of tenant "${id}"`);
      }
      await confirmed?.();
      const deleted: Record<string, number> = {};
      for (const table of await tenantTables(db)) {
        const r = await db.query(`DELETE FROM ${quoteIdent(table)} WHERE tenant_id = $1`, [id]);
        deleted[table] = r.rowCount ?? 0;
      }
      await db.query("DELETE FROM tenants WHERE id = $1", [id]);
      deleted["tenants"] = 1;
      return deleted;
    });
  }
}

function found(id: string, row: TenantRow | undefined): TenantRow {
  if (!row) throw new TenantNotFoundError(`no tenant "${id}"`);
  return row;
}

async function lockTenant(db: PoolClient, id: string): Promise<TenantRow> {
  return found(id, (await db.query<TenantRow>(`SELECT ${COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE`, [id])).rows[0]);
}

/** Every ordinary or partitioned table (not a partition) of the current schema with a tenant_id column. */
export async function tenantTables(db: PoolClient | Pool): Promise<string[]> {
  const r = await db.query<{ relname: string }>(
    `SELECT c.relname FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE a.attname = 'tenant_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND n.nspname = current_schema()
      ORDER BY c.relname`,
  );
  return r.rows.map((x) => x.relname);
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
