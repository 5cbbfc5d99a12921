// Tamper evidence. Each event has a content hash over its canonical content
// and a chain hash linking it to the tenant's previous event:
//
//   content_hash = SHA-256(salt || "\n" || canonical JSON of the producer's content)
//                  (version 2, every event since; version 1, before: no salt)
//   hash         = SHA-256(prev_hash || "\n" || canonical JSON of
//                    {content_hash, received_at, sequence, tenant_id, v})
//
// Altering a stored field changes the recomputed content hash; removing or
// reordering events breaks the prev_hash links or the sequence. The salt is
// random per event and destroyed with the personal content on erasure, so
// the content hash an erased event keeps confirms no guess of what it held.
// The encoding is specified in docs/HASH_CHAIN.md so auditors can verify
// independently.
import { hash } from "node:crypto";
import { randomHex } from "./random-hex.ts";
import { canonicalJson, type Json, jsonString } from "./json-canonical.ts";
import type { EventRecord, StoredRecord } from "./event-record.ts";
import { formatMicros, type Micros } from "./timestamp.ts";

export const GENESIS_HASH = "0".repeat(64);
const CHAIN_VERSION = 1;

/** Of the text's UTF-8 bytes. One call, no Hash object: three of these per ingested event. */
function sha256Hex(text: string): string {
  return hash("sha256", text, "hex");
}

/** The producer's content with the field names of the contract; hashed, and the body of a search document. */
export type CanonicalContent = {
  id: string;
  occurred_at: string;
  action: string;
  actor: { id: string; type: string; name: string; ip: string; user_agent: string; session_id: string };
  target: { type: string; id: string; name: string } | null;
  outcome: string;
  severity: string;
  context: { request_id: string; trace_id: string; source: string; location: string };
  changes: EventRecord["changes"];
  metadata: EventRecord["metadata"];
  message: string;
};

export function canonicalContent(r: EventRecord): CanonicalContent {
  return {
    id: r.id,
    occurred_at: formatMicros(r.occurredAt),
    action: r.action,
    actor: {
      id: r.actor.id,
      type: r.actor.type,
      name: r.actor.name,
      ip: r.actor.ip,
      user_agent: r.actor.userAgent,
      session_id: r.actor.sessionId,
    },
    target: r.target,
    outcome: r.outcome,
    severity: r.severity,
    context: {
      request_id: r.context.requestId,
      trace_id: r.context.traceId,
      source: r.context.source,
      location: r.context.location,
    },
    changes: r.changes,
    metadata: r.metadata,
    message: r.message,
  };
}

const str = jsonString;

/**
 * canonicalJson(canonicalContent(r)), written out directly: the envelope's
 * keys are fixed, so their sorted order is spelled out here instead of being
 * sorted for every event on the ingest path. Only the open content (changes,
 * metadata) goes through the general canonicalJson.
 */
export function canonicalContentJson(r: EventRecord): string {
  const a = r.actor;
  const c = r.context;
  const t = r.target;
  return (
    `{"action":${str(r.action)}` +
    `,"actor":{"id":${str(a.id)},"ip":${str(a.ip)},"name":${str(a.name)},"session_id":${str(a.sessionId)},"type":${str(a.type)},"user_agent":${str(a.userAgent)}}` +
    `,"changes":${r.changes === null ? "null" : canonicalJson(r.changes as Json)}` +
    `,"context":{"location":${str(c.location)},"request_id":${str(c.requestId)},"source":${str(c.source)},"trace_id":${str(c.traceId)}}` +
    `,"id":${str(r.id)},"message":${str(r.message)}` +
    `,"metadata":${r.metadata === null ? "null" : canonicalJson(r.metadata as Json)}` +
    `,"occurred_at":${str(formatMicros(r.occurredAt))},"outcome":${str(r.outcome)},"severity":${str(r.severity)}` +
    `,"target":${t === null ? "null" : `{"id":${str(t.id)},"name":${str(t.name)},"type":${str(t.type)}}`}}`
  );
}

/** Bytes of randomness in a salt: 128 bits, written as 32 lowercase hex digits. */
const SALT_BYTES = 16;

/** A fresh random salt for one event's content hash (version 2). */
export function newSalt(): string {
  return randomHex(SALT_BYTES);
}

function saltedHash(salt: string, canonical: string): string {
  return salt === "" ? sha256Hex(canonical) : sha256Hex(`${salt}\n${canonical}`);
}

/**
 * The content hash the chain binds: over the salt and the canonical content
 * when the record has a salt (version 2), over the canonical content alone
 * when it has none (version 1, events written before salts).
 */
export function contentHash(r: EventRecord & { salt?: string }): string {
  return saltedHash(r.salt ?? "", canonicalContentJson(r));
}

/**
 * The content's own digest, independent of any salt: what the idempotency
 * table compares a retry with (the same content under a new salt is still
 * the same event). Equals the content hash of a version 1 event.
 */
export function contentDigest(r: EventRecord): string {
  return sha256Hex(canonicalContentJson(r));
}

/** What the writer needs to chain a new event: its salt, its content hash and its content digest. */
export type SealedContent = { salt: string; contentHash: string; digest: string };

/** A new event's salt and both hashes, from one canonical encoding. */
export function sealContent(r: EventRecord, salt: string = newSalt()): SealedContent {
  const canonical = canonicalContentJson(r);
  return { salt, contentHash: saltedHash(salt, canonical), digest: sha256Hex(canonical) };
}

export function chainHash(prevHash: string, link: { tenantId: string; sequence: bigint; receivedAt: Micros; contentHash: string }): string {
  const body = canonicalJson({
    v: CHAIN_VERSION,
    tenant_id: link.tenantId,
    sequence: link.sequence.toString(),
    received_at: formatMicros(link.receivedAt),
    content_hash: link.contentHash,
  });
  return sha256Hex(`${prevHash}\n${body}`);
}

export type ChainBreak = {
  sequence: bigint;
  eventId: string;
  reason: string;
  expectedHash: string;
  storedHash: string;
};

/**
 * Checks stored events, in sequence order, against the chain. `prevHash` is
 * the stored hash of the event just before the first one (GENESIS_HASH when
 * starting at 1). Returns the first break, or null.
 */
export class ChainVerifier {
  private expectedSequence: bigint;
  private prevHash: string;
  checked = 0n;
  lastHash: string;

  constructor(firstSequence: bigint, prevHash: string) {
    this.expectedSequence = firstSequence;
    this.prevHash = prevHash;
    this.lastHash = prevHash;
  }

  next(r: StoredRecord): ChainBreak | null {
    if (r.sequence !== this.expectedSequence) {
      const missing = r.sequence > this.expectedSequence;
      return {
        sequence: this.expectedSequence,
        eventId: missing ? "" : r.id,
        reason: missing
          ? `event at sequence ${this.expectedSequence} is missing (next stored is ${r.sequence})`
          : `sequence ${r.sequence} is out of order`,
        expectedHash: "",
        storedHash: "",
      };
    }
    // An erased event's content is gone: its stored content hash stands in
    // for it, still bound by the chain hash (docs/HASH_CHAIN.md, "Erased events").
    const recomputedContent = r.erased ? r.contentHash : contentHash(r);
    const expected = chainHash(this.prevHash, { ...r, contentHash: recomputedContent });
    if (r.prevHash !== this.prevHash) {
      return {
        sequence: r.sequence,
        eventId: r.id,
        reason: "link broken: prev_hash does not match the hash of the previous event",
        expectedHash: expected,
        storedHash: r.hash,
      };
    }
    if (recomputedContent !== r.contentHash || expected !== r.hash) {
      return {
        sequence: r.sequence,
        eventId: r.id,
        reason:
          recomputedContent !== r.contentHash
            ? "content altered: stored fields do not match the content hash"
            : "hash mismatch: stored hash does not match the recomputed chain hash",
        expectedHash: expected,
        storedHash: r.hash,
      };
    }
    this.prevHash = r.hash;
    this.lastHash = r.hash;
    this.expectedSequence += 1n;
    this.checked += 1n;
    return null;
  }

  /** Call after the last event, with the sequence the range should end at. */
  finish(lastSequence: bigint): ChainBreak | null {
    if (this.expectedSequence <= lastSequence) {
      return {
        sequence: this.expectedSequence,
        eventId: "",
        reason: `event at sequence ${this.expectedSequence} is missing`,
        expectedHash: "",
        storedHash: "",
      };
    }
    return null;
  }
}
