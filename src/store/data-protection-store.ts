// The tables of data protection (migrations/0009_data_protection.sql): a
// tenant's masking rules and its wrapped data keys. Cross-tenant by nature
// (ingest and reads of every tenant use them), so in system scope with an
// explicit tenant condition, as the key store does.
import type { Pool } from "pg";
import type { MaskingRules } from "../domain/masking.ts";
import { systemQuery, withSystemScope } from "./system-scope.ts";

export type DataKeyRow = { keyId: string; kekId: string; wrapped: Buffer; createdAt: Date };

export class DataProtectionStore {
  private readonly pool: Pool;

  constructor(pool: Pool) {
    this.pool = pool;
  }

  /** The tenant's own rules; null when it set none. */
  async maskingRules(tenantId: string): Promise<MaskingRules | null> {
    const r = await systemQuery<{ rules: MaskingRules }>(this.pool, "SELECT rules FROM masking_rules WHERE tenant_id = $1", [tenantId]);
    return r.rows[0]?.rules ?? null;
  }

  /** Replaces the tenant's rules; null forgets them (the default set applies). */
  async setMaskingRules(tenantId: string, rules: MaskingRules | null): Promise<void> {
    if (rules === null) {
      await systemQuery(this.pool, "DELETE FROM masking_rules WHERE tenant_id = $1", [tenantId]);
      return;
    }
    await systemQuery(
      this.pool,
      `INSERT INTO masking_rules (tenant_id, rules) VALUES ($1, $2)
       ON CONFLICT (tenant_id) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()`,
      [tenantId, JSON.stringify(rules)],
    );
  }

  /** Every data key of the tenant, newest first. */
  async dataKeys(tenantId: string): Promise<DataKeyRow[]> {
    const r = await systemQuery<DataKeyRow>(
      this.pool,
      `SELECT key_id AS "keyId", kek_id AS "kekId", wrapped, created_at AS "createdAt"
         FROM data_keys WHERE tenant_id = $1 ORDER BY created_at DESC, key_id DESC`,
      [tenantId],
    );
    return r.rows;
  }

  /**
   * Stores a new data key unless `onlyIfNoneFor` names a KEK that already
   * wraps a key of the tenant (replicas racing to make a tenant's first key
   * keep one of them: the answer is the newest key after the statement).
   */
  async addDataKey(tenantId: string, key: { keyId: string; kekId: string; wrapped: Buffer }, onlyIfNoneFor?: string): Promise<void> {
    await withSystemScope(this.pool, async (db) => {
      // One writer per tenant at a time: the check and the insert see the same keys.
      await db.query("SELECT pg_advisory_xact_lock(hashtext('auditlog.data_keys'), hashtext($1))", [tenantId]);
      if (onlyIfNoneFor !== undefined) {
        const r = await db.query("SELECT 1 FROM data_keys WHERE tenant_id = $1 AND kek_id = $2 LIMIT 1", [tenantId, onlyIfNoneFor]);
        if (r.rowCount) return;
      }
      await db.query("INSERT INTO data_keys (tenant_id, key_id, kek_id, wrapped) VALUES ($1, $2, $3, $4)", [
        tenantId,
        key.keyId,
        key.kekId,
        key.wrapped,
      ]);
    });
  }
}
