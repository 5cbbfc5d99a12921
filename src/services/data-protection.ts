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

  /**
   * How `principal` sees the tenant's records, on every read path (GetEvent,
   * SearchEvents, both exports, the tail): decrypted for callers allowed to
   * see protected content, as stored otherwise. Called once per request and
   * applied per page or batch; the unwrapped data keys come from DataKeys'
   * cache, so a batch costs only its AES-GCM decryptions.
   */
  viewFor(principal: Principal, tenantId: string): RecordView {
    const keys = this.keys;
    if (keys === null || !maySeeProtectedContent(principal)) return asStored;
    return async (records) => {
      const ids = [...new Set(records.flatMap(envelopeKeyIds))];
      if (ids.length === 0) return records;
      const keyOf = await keys.byId(tenantId, ids);
      return records.map((r) => decryptRecord(r, keyOf, tenantId));
    };
  }
}

/** Records as one caller may see them (DataProtection.viewFor). */
export type RecordView = <R extends EventRecord>(records: R[]) => Promise<R[]>;

/** The view of callers who get records as stored (and of servers without encryption at rest). */
export const asStored: RecordView = async (records) => records;

/** `principal`'s view, or records as stored when the server has no data protection. */
export function viewOf(protection: Pick<DataProtection, "viewFor"> | undefined, principal: Principal, tenantId: string): RecordView {
  return protection ? protection.viewFor(principal, tenantId) : asStored;
}
