// api_keys is under forced row-level security (migrations/0007): key
// administration spans tenants (the operator manages every tenant's keys), so
// it runs in system scope; authentication reads one key by id through the
// function made only for it.
import type { Pool } from "pg";
import { systemQuery } from "./system-scope.ts";

export type ApiKeyRow = {
  id: string;
  tenant_id: string;
  name: string;
  scopes: string[];
  secret_hash: Buffer;
  created_at: Date;
  rotated_at: Date | null;
  revoked_at: Date | null;
  expires_at: Date | null;
};

const COLUMNS = "id, tenant_id, name, scopes, secret_hash, created_at, rotated_at, revoked_at, expires_at";

export class ApiKeyStore {
  private readonly pool: Pool;

  constructor(pool: Pool) {
    this.pool = pool;
  }

  async create(k: {
    id: string;
    tenantId: string;
    name: string;
    scopes: string[];
    secretHash: Buffer;
    expiresAt: Date | null;
  }): Promise<ApiKeyRow> {
    const r = await systemQuery<ApiKeyRow>(
      this.pool,
      `INSERT INTO api_keys (id, tenant_id, name, scopes, secret_hash, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
      [k.id, k.tenantId, k.name, k.scopes, k.secretHash, k.expiresAt],
    );
    return r.rows[0]!;
  }

  /** The key with this id, whatever its tenant: for authentication and for checking who owns a key. */
  async get(id: string): Promise<ApiKeyRow | null> {
    return (await this.pool.query<ApiKeyRow>("SELECT * FROM auditlog_key_for_authentication($1)", [id])).rows[0] ?? null;
  }

  async list(tenantId: string): Promise<ApiKeyRow[]> {
    return (
      await systemQuery<ApiKeyRow>(this.pool, `SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id`, [
        tenantId,
      ])
    ).rows;
  }

  /** Replaces the secret of a live key; null if there is no such live key. */
  async rotate(id: string, secretHash: Buffer): Promise<ApiKeyRow | null> {
    const r = await systemQuery<ApiKeyRow>(
      this.pool,
      `UPDATE api_keys SET secret_hash = $2, rotated_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING ${COLUMNS}`,
      [id, secretHash],
    );
    return r.rows[0] ?? null;
  }

  async revoke(id: string): Promise<ApiKeyRow | null> {
    const r = await systemQuery<ApiKeyRow>(
      this.pool,
      `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
      [id],
    );
    return r.rows[0] ?? null;
  }
}
