// Erasure of a person's data (docs/HASH_CHAIN.md, "Erased events"): which
// fields identify a person, what an erased event keeps, and how the subject
// is recorded without naming it.
//
// An erased event keeps what places it in the log and says what happened,
// but not to or by whom: id, sequence, times, action, outcome, severity,
// actor type, target type, request and trace ids, source, and its hashes.
// It loses the actor's id, name, IP, user agent and session, the target's id
// and name, the location, the message, metadata and changes. Its stored
// content_hash stands in for the content in the chain.
import { createHash } from "node:crypto";
import type { StoredRecord } from "./event-record.ts";
import { termValue } from "./match-query.ts";

/** The fields EraseSubject can match, and their events column. */
export const ERASABLE_FIELDS = {
  "actor.id": "actor_id",
  "actor.name": "actor_name",
  "actor.ip": "actor_ip",
  "actor.session_id": "actor_session_id",
  "target.id": "target_id",
} as const;

export type ErasableField = keyof typeof ERASABLE_FIELDS;

export function erasableField(name: string): ErasableField {
  const f = name === "" ? "actor.id" : name;
  if (!(f in ERASABLE_FIELDS)) throw new Error(`not an erasable field: ${name}`);
  return f as ErasableField;
}

/** The value of `field` in the record ("" when it has no target). */
export function fieldValue(r: StoredRecord, field: ErasableField): string {
  return termValue(r, field) ?? "";
}

/** The record as an erasure leaves it; `contentHash` must be the hash of the intact content. */
export function erasedRecord(r: StoredRecord): StoredRecord {
  return {
    ...r,
    actor: { id: "", type: r.actor.type, name: "", ip: "", userAgent: "", sessionId: "" },
    target: r.target === null ? null : { type: r.target.type, id: "", name: "" },
    context: { ...r.context, location: "" },
    changes: null,
    metadata: null,
    message: "",
    erased: true,
  };
}

/**
 * The subject as the erasure record names it: SHA-256 over the erasure id,
 * the field and the value. The random erasure id salts it, so equal subjects
 * of two erasures do not give equal hashes; whoever knows the subject can
 * recompute it and see that this erasure was theirs.
 */
export function subjectHash(erasureId: string, field: ErasableField, value: string): string {
  return createHash("sha256").update(`${erasureId}\n${field}\n${value}`, "utf8").digest("hex");
}
