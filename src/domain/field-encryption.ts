// Encryption at rest of designated event parts (docs/ARCHITECTURE.md, "Data
// protection"): AES-256-GCM under a tenant's data key; data keys are wrapped
// (AES-256-GCM too) by a key-encryption key. An encrypted part is stored as
// an envelope object in place of its value, so it stays a JSON object (the
// contract's Struct), the hash chain covers the envelope (docs/HASH_CHAIN.md)
// and a reader without the key sees only the envelope.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import type { EventRecord } from "./event-record.ts";

/** The key of an envelope object: `{"$encrypted": {v, kid, iv, data}}`. */
export const ENVELOPE_KEY = "$encrypted";

export type DataKey = { keyId: string; key: Buffer };

const IV_BYTES = 12;
const TAG_BYTES = 16;

function seal(key: Buffer, plain: Buffer, aad: Buffer): { iv: Buffer; data: Buffer } {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(aad);
  const data = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  return { iv, data };
}

function open(key: Buffer, iv: Buffer, data: Buffer, aad: Buffer): Buffer {
  const d = createDecipheriv("aes-256-gcm", key, iv);
  d.setAAD(aad);
  d.setAuthTag(data.subarray(data.length - TAG_BYTES));
  return Buffer.concat([d.update(data.subarray(0, data.length - TAG_BYTES)), d.final()]);
}

/** A data key wrapped by a KEK: iv | ciphertext | tag, bound to the tenant and the key's id. */
export function wrapDataKey(kek: Buffer, dataKey: DataKey, tenantId: string): Buffer {
  const { iv, data } = seal(kek, dataKey.key, Buffer.from(`auditlog-data-key|${tenantId}|${dataKey.keyId}`));
  return Buffer.concat([iv, data]);
}

export function unwrapDataKey(kek: Buffer, wrapped: Buffer, tenantId: string, keyId: string): DataKey {
  const key = open(kek, wrapped.subarray(0, IV_BYTES), wrapped.subarray(IV_BYTES), Buffer.from(`auditlog-data-key|${tenantId}|${keyId}`));
  return { keyId, key };
}

export function newDataKey(): DataKey {
  return { keyId: `dk_${randomBytes(8).toString("hex")}`, key: randomBytes(32) };
}

// The tenant and the part's path are authenticated with the ciphertext, so an
// envelope copied to another tenant's or another field's row does not decrypt.
const aadOf = (tenantId: string, path: string) => Buffer.from(`auditlog-field|${tenantId}|${path}`);

export function isEnvelope(v: unknown): v is { [ENVELOPE_KEY]: { v: number; kid: string; iv: string; data: string } } {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const inner = (v as Record<string, unknown>)[ENVELOPE_KEY];
  return Object.keys(v).length === 1 && inner !== null && typeof inner === "object" && typeof (inner as { kid?: unknown }).kid === "string";
}

export function encryptPart(key: DataKey, tenantId: string, path: string, value: JsonObject): JsonObject {
  const { iv, data } = seal(key.key, Buffer.from(JSON.stringify(value)), aadOf(tenantId, path));
  return { [ENVELOPE_KEY]: { v: 1, kid: key.keyId, iv: iv.toString("base64"), data: data.toString("base64") } };
}

export function decryptPart(key: Buffer, tenantId: string, path: string, envelope: JsonObject): JsonObject {
  if (!isEnvelope(envelope)) throw new Error("not an encrypted envelope");
  const e = envelope[ENVELOPE_KEY];
  return JSON.parse(open(key, Buffer.from(e.iv, "base64"), Buffer.from(e.data, "base64"), aadOf(tenantId, path)).toString("utf8"));
}

/** The parts encrypted at rest: both sides of `changes`. */
export const ENCRYPTED_PARTS = ["changes.before", "changes.after"] as const;

/** Encrypts the record's designated parts (after masking, before hashing). */
export function encryptRecord(r: EventRecord, key: DataKey, tenantId: string): EventRecord {
  if (r.changes === null) return r;
  const enc = (v: JsonObject | null, path: string) => (v === null ? null : encryptPart(key, tenantId, path, v));
  return { ...r, changes: { before: enc(r.changes.before, "changes.before"), after: enc(r.changes.after, "changes.after") } };
}

/** The data key ids a record's envelopes need. */
export function envelopeKeyIds(r: EventRecord): string[] {
  const ids: string[] = [];
  for (const v of [r.changes?.before, r.changes?.after]) if (isEnvelope(v)) ids.push(v[ENVELOPE_KEY].kid);
  return ids;
}

/** Decrypts the record's envelopes with `keyOf` (a data key by id). */
export function decryptRecord<R extends EventRecord>(r: R, keyOf: (keyId: string) => Buffer, tenantId: string): R {
  if (r.changes === null) return r;
  const dec = (v: JsonObject | null, path: string) => (isEnvelope(v) ? decryptPart(keyOf(v[ENVELOPE_KEY].kid), tenantId, path, v) : v);
  return { ...r, changes: { before: dec(r.changes.before, "changes.before"), after: dec(r.changes.after, "changes.after") } };
}
