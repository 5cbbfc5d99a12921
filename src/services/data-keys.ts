// Each tenant's data keys for encryption at rest, unwrapped in memory: the
// newest one encrypts new writes; any of them decrypts what it encrypted.
// A tenant's first write makes its first key; a KEK change (a new
// AUDITLOG_KEK_ID) makes a new key under the new KEK at the tenant's next
// write, and rotate() makes one on demand. Old rows are never rewritten.
import type { KekSettings } from "../data-protection-config.ts";
import { type DataKey, newDataKey, unwrapDataKey, wrapDataKey } from "../domain/field-encryption.ts";
import type { DataProtectionStore } from "../store/data-protection-store.ts";

type TenantKeys = { active: DataKey; byId: Map<string, Buffer>; loadedAt: number };

export class DataKeys {
  private readonly tenants = new Map<string, TenantKeys>();
  private readonly store: Pick<DataProtectionStore, "dataKeys" | "addDataKey">;
  private readonly kek: KekSettings;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(store: Pick<DataProtectionStore, "dataKeys" | "addDataKey">, kek: KekSettings, ttlMs: number, now: () => number = Date.now) {
    this.store = store;
    this.kek = kek;
    this.ttlMs = ttlMs;
    this.now = now;
  }

  /** The key new writes of the tenant use (made when the current KEK wraps none yet). */
  async active(tenantId: string): Promise<DataKey> {
    return (await this.load(tenantId, false)).active;
  }

  /** The key with this id; reloads once when it is unknown (another replica rotated). */
  async byId(tenantId: string, keyIds: string[]): Promise<(keyId: string) => Buffer> {
    let keys = await this.load(tenantId, false);
    if (keyIds.some((id) => !keys.byId.has(id))) keys = await this.load(tenantId, true);
    return (id) => {
      const key = keys.byId.get(id);
      if (key === undefined) throw new Error(`data key ${id} of tenant ${tenantId} is unknown or its KEK is not configured`);
      return key;
    };
  }

  async rotate(tenantId: string): Promise<{ keyId: string; kekId: string }> {
    const key = newDataKey();
    await this.store.addDataKey(tenantId, {
      keyId: key.keyId,
      kekId: this.kek.current.id,
      wrapped: wrapDataKey(this.kek.current.key, key, tenantId),
    });
    this.tenants.delete(tenantId);
    return { keyId: key.keyId, kekId: this.kek.current.id };
  }

  private async load(tenantId: string, fresh: boolean): Promise<TenantKeys> {
    const cached = this.tenants.get(tenantId);
    if (!fresh && cached !== undefined && this.now() - cached.loadedAt < this.ttlMs) return cached;
    let rows = await this.store.dataKeys(tenantId);
    if (!rows.some((r) => r.kekId === this.kek.current.id)) {
      const key = newDataKey();
      await this.store.addDataKey(
        tenantId,
        { keyId: key.keyId, kekId: this.kek.current.id, wrapped: wrapDataKey(this.kek.current.key, key, tenantId) },
        this.kek.current.id,
      );
      rows = await this.store.dataKeys(tenantId);
    }
    const keks = new Map([this.kek.current, ...this.kek.retired].map((k) => [k.id, k.key]));
    const byId = new Map<string, Buffer>();
    let active: DataKey | undefined;
    for (const row of rows) {
      const kek = keks.get(row.kekId);
      if (kek === undefined) continue; // Its KEK is not configured: its rows cannot be read here.
      const key = unwrapDataKey(kek, row.wrapped, tenantId, row.keyId);
      byId.set(row.keyId, key.key);
      if (active === undefined && row.kekId === this.kek.current.id) active = key;
    }
    if (active === undefined) throw new Error(`tenant ${tenantId} has no data key under the current KEK`);
    const entry = { active, byId, loadedAt: this.now() };
    this.tenants.set(tenantId, entry);
    return entry;
  }
}
