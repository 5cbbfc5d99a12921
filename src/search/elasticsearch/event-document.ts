// StoredRecord <-> Elasticsearch document. The document keeps everything
// (so search answers without a PostgreSQL round trip) plus derived fields
// for searching: `open_text` (the string values of metadata and changes, for
// free text) and `id_hash` (for the reconciler's checksums).
import { isEnvelope } from "../../domain/field-encryption.ts";
import { createHash } from "node:crypto";
import type { JsonValue } from "@bufbuild/protobuf";
import type { ActorTypeName, OutcomeName, SeverityName, StoredRecord } from "../../domain/event-record.ts";
import { formatMicros, parseMicros } from "../../domain/timestamp.ts";
import { type CanonicalContent, canonicalContent } from "../../domain/hash-chain.ts";

/** The canonical content (hash-chain.ts) plus what the server added and the derived search fields. */
export type EventDocument = CanonicalContent & {
  tenant_id: string;
  sequence: number;
  received_at: string;
  open_text: string[];
  content_hash: string;
  hash: string;
  prev_hash: string;
  id_hash: number;
  /** The content hash's salt; absent for events without one (written before salts, or erased). */
  salt?: string;
  /** Present (true) on erased events only: their content_hash is verified as kept. */
  erased?: true;
};

/** Document ids are unique per index, event ids only per tenant: namespace them. */
export function documentId(tenantId: string, eventId: string): string {
  return `${tenantId}/${eventId}`;
}

/**
 * A 32-bit hash of the event id, as a non-negative number. Sums of it over a
 * window stay exact in a double (2^32 x 2^20 events < 2^53), and PostgreSQL
 * computes the same from md5: ('x' || left(md5(id), 8))::bit(32)::bigint.
 */
export function idHash(eventId: string): number {
  return createHash("md5").update(eventId, "utf8").digest().readUInt32BE(0);
}

/** Every string value inside open content, in document order. */
export function openTextValues(...roots: (JsonValue | null | undefined)[]): string[] {
  const out: string[] = [];
  const walk = (v: JsonValue | null | undefined) => {
    if (typeof v === "string") out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    // Encrypted parts (their ciphertext) are not searchable text.
    else if (v !== null && typeof v === "object" && !isEnvelope(v)) Object.values(v).forEach(walk);
  };
  roots.forEach(walk);
  return out;
}

export function documentFromRecord(r: StoredRecord): EventDocument {
  return {
    ...canonicalContent(r),
    tenant_id: r.tenantId,
    sequence: Number(r.sequence),
    received_at: formatMicros(r.receivedAt),
    open_text: openTextValues(r.metadata, r.changes?.before, r.changes?.after),
    content_hash: r.contentHash,
    hash: r.hash,
    prev_hash: r.prevHash,
    id_hash: idHash(r.id),
    ...(r.salt ? { salt: r.salt } : {}),
    ...(r.erased ? { erased: true as const } : {}),
  };
}

export function recordFromDocument(d: EventDocument): StoredRecord {
  return {
    tenantId: d.tenant_id,
    id: d.id,
    sequence: BigInt(d.sequence),
    occurredAt: parseMicros(d.occurred_at),
    receivedAt: parseMicros(d.received_at),
    action: d.action,
    actor: {
      id: d.actor.id,
      type: d.actor.type as ActorTypeName,
      name: d.actor.name,
      ip: d.actor.ip,
      userAgent: d.actor.user_agent,
      sessionId: d.actor.session_id,
    },
    target: d.target,
    outcome: d.outcome as OutcomeName,
    severity: d.severity as SeverityName,
    context: {
      requestId: d.context.request_id,
      traceId: d.context.trace_id,
      source: d.context.source,
      location: d.context.location,
    },
    changes: d.changes,
    metadata: d.metadata,
    message: d.message,
    contentHash: d.content_hash,
    hash: d.hash,
    prevHash: d.prev_hash,
    ...(d.salt ? { salt: d.salt } : {}),
    ...(d.erased ? { erased: true } : {}),
  };
}
