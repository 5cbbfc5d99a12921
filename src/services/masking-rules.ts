// Each tenant's masking rules, compiled, for the ingest path (submitEvents in
// ingest-service.ts, shared by the RPCs and the AMQP consumer). Cached per
// tenant for `ttlMs`: a change made on this replica applies at once (set()
// forgets the entry), one made on another replica within the TTL.
import { compileMasking, DEFAULT_MASKING_RULES, type Masker, type MaskingRules } from "../domain/masking.ts";
import type { DataProtectionStore } from "../store/data-protection-store.ts";

type Entry = { masker: Masker; rules: MaskingRules; isDefault: boolean; loadedAt: number };

const MAX_TENANTS = 10_000;

export class MaskingRulesCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();

  private readonly store: Pick<DataProtectionStore, "maskingRules" | "setMaskingRules">;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(store: Pick<DataProtectionStore, "maskingRules" | "setMaskingRules">, ttlMs: number, now: () => number = Date.now) {
    this.store = store;
    this.ttlMs = ttlMs;
    this.now = now;
  }

  /** The tenant's compiled rules (the default set when it set none). */
  async masker(tenantId: string): Promise<Masker> {
    return (await this.entry(tenantId)).masker;
  }

  async get(tenantId: string): Promise<{ rules: MaskingRules; isDefault: boolean }> {
    const e = await this.entry(tenantId);
    return { rules: e.rules, isDefault: e.isDefault };
  }

  /** Stores the tenant's rules (null: back to the default set) and forgets the cached ones. */
  async set(tenantId: string, rules: MaskingRules | null): Promise<void> {
    await this.store.setMaskingRules(tenantId, rules);
    this.entries.delete(tenantId);
  }

  private async entry(tenantId: string): Promise<Entry> {
    const cached = this.entries.get(tenantId);
    if (cached !== undefined && this.now() - cached.loadedAt < this.ttlMs) return cached;
    let pending = this.loading.get(tenantId);
    if (pending === undefined) {
      pending = this.load(tenantId).finally(() => this.loading.delete(tenantId));
      this.loading.set(tenantId, pending);
    }
    return pending;
  }

  private async load(tenantId: string): Promise<Entry> {
    const own = await this.store.maskingRules(tenantId);
    const rules = own ?? DEFAULT_MASKING_RULES;
    const entry = { masker: compileMasking(rules), rules, isDefault: own === null, loadedAt: this.now() };
    if (this.entries.size >= MAX_TENANTS) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(tenantId, entry);
    return entry;
  }
}
