// Whether a tenant is suspended, for the one authentication path
// (authenticate.ts): a suspended tenant's ingest and reads are refused with
// FAILED_PRECONDITION "tenant suspended" whatever the credential.
//
// Answers are cached per tenant for `cacheMs`, the same bound as the key
// cache (AUDITLOG_KEY_CACHE_MS), so a suspension takes effect on every
// replica within that time; SuspendTenant and ResumeTenant call forget() on
// the replica that ran them, where it takes effect at once. A tenant that
// does not exist (deleted) is "missing": a key of it that another replica
// still has in its cache is refused as no key at all. Missing tenants are
// cached too, so a stream of made-up tenant ids costs one lookup per id and
// TTL; the cache is bounded like the key cache's negative entries.
/** When the tenant was suspended (null: it is not); undefined: there is no such tenant. */
export type SuspensionLookup = (tenantId: string) => Promise<Date | null | undefined>;

export type TenantState = "active" | "suspended" | "missing";

const MAX_ENTRIES = 10_000;

export class TenantStatus {
  private readonly cache = new Map<string, { state: TenantState; expires: number }>();
  private readonly lookup: SuspensionLookup;
  private readonly cacheMs: number;
  private epoch = 0;

  constructor(lookup: SuspensionLookup, cacheMs: number) {
    this.lookup = lookup;
    this.cacheMs = cacheMs;
  }

  async state(tenantId: string, now = Date.now()): Promise<TenantState> {
    const hit = this.cache.get(tenantId);
    if (hit && hit.expires > now) return hit.state;
    const epoch = this.epoch;
    const at = await this.lookup(tenantId);
    const state: TenantState = at === undefined ? "missing" : at === null ? "active" : "suspended";
    // A forget() while this looked up: what it read may be older than the change.
    if (epoch === this.epoch && this.cacheMs > 0) {
      this.cache.delete(tenantId);
      while (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(tenantId, { state, expires: now + this.cacheMs });
    }
    return state;
  }

  /** The tenant was suspended, resumed or deleted here: ask PostgreSQL next time. */
  forget(tenantId: string): void {
    this.epoch++;
    this.cache.delete(tenantId);
  }
}
