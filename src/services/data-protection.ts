// Data protection on the two paths of an event (docs/ARCHITECTURE.md, "Data
// protection"). Ingest (submitEvents, shared by the RPCs and AMQP): mask,
// then encrypt the designated parts, then the record is hashed and stored.
// Reads: decrypt for callers allowed to see protected content; everyone
// else gets the stored envelope, which is ciphertext.
import type { Principal } from "../auth/principal.ts";
import type { EventRecord } from "../domain/event-record.ts";
import { decryptRecord, encryptRecord, envelopeKeyIds } from "../domain/field-encryption.ts";
import type { DataKeys } from "./data-keys.ts";
import type { MaskingRulesCache } from "./masking-rules.ts";

/**
 * Who may read decrypted content: API keys with the query scope, and people
 * with the admin or auditor role. A User (their own activity) and anything
 * else see the encrypted envelope.
 */
export function maySeeProtectedContent(principal: Principal): boolean {
  if (principal.kind === "key") return principal.scopes.has("query");
  if (principal.kind === "token") return principal.role === "admin" || principal.role === "auditor";
  return false;
}

export class DataProtection {
  private readonly masking: MaskingRulesCache;
  /** Null: encryption at rest is off. */
  private readonly keys: DataKeys | null;

  constructor(masking: MaskingRulesCache, keys: DataKeys | null) {
    this.masking = masking;
    this.keys = keys;
  }

  /** The transformation of the tenant's records at ingest. */
  readonly forIngest = async (tenantId: string): Promise<(r: EventRecord) => EventRecord> => {
    const mask = await this.masking.masker(tenantId);
    if (this.keys === null) return mask;
    const key = await this.keys.active(tenantId);
    return (r) => encryptRecord(mask(r), key, tenantId);
  };

  /** Records as `principal` may see them. */
  async reveal<R extends EventRecord>(principal: Principal, tenantId: string, records: R[]): Promise<R[]> {
    if (this.keys === null || !maySeeProtectedContent(principal)) return records;
    const ids = [...new Set(records.flatMap(envelopeKeyIds))];
    if (ids.length === 0) return records;
    const keyOf = await this.keys.byId(tenantId, ids);
    return records.map((r) => decryptRecord(r, keyOf, tenantId));
  }
}
