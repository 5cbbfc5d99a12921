// Signed checkpoints: a tenant's chain head (sequence, hash) at a time,
// signed, so that a rewritten history no longer reaches a head someone kept
// (docs/HASH_CHAIN.md, "Signed checkpoints"). The signed bytes are the UTF-8
// of checkpointPayload: canonical JSON, so anyone can rebuild them.
import { canonicalJson } from "./json-canonical.ts";
import type { KeyObject } from "node:crypto";
import { type SigningKey, signatureProblem, signText } from "./signing.ts";
import { formatMicros, type Micros, parseMicros } from "./timestamp.ts";

export const CHECKPOINT_TYPE = "auditlog.checkpoint";

export type Checkpoint = {
  tenantId: string;
  sequence: bigint;
  hash: string;
  createdAt: Micros;
  keyId: string;
};

export type SignedCheckpoint = Checkpoint & { signature: string };

type PayloadFields = { type: string; v: 1; tenant_id: string; sequence: string; hash: string; created_at: string; key_id: string };

function payloadFields(c: Checkpoint): PayloadFields {
  return {
    type: CHECKPOINT_TYPE,
    v: 1,
    tenant_id: c.tenantId,
    sequence: c.sequence.toString(),
    hash: c.hash,
    created_at: formatMicros(c.createdAt),
    key_id: c.keyId,
  };
}

/** The exact text whose UTF-8 bytes are signed. */
export function checkpointPayload(c: Checkpoint): string {
  return canonicalJson(payloadFields(c));
}

export function signCheckpoint(key: SigningKey, head: Omit<Checkpoint, "keyId">): SignedCheckpoint {
  const c = { ...head, keyId: key.keyId };
  return { ...c, signature: signText(key, checkpointPayload(c)) };
}

/** The self-contained document: `{"checkpoint": <payload fields>, "signature": <base64>}`, pretty-printed. */
export function checkpointDocument(c: SignedCheckpoint): string {
  return `${JSON.stringify({ checkpoint: payloadFields(c), signature: c.signature }, null, 2)}\n`;
}

export class DocumentFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DocumentFormatError";
  }
}

function field(o: Record<string, unknown>, name: string, what: string): string {
  const v = o[name];
  if (typeof v !== "string") throw new DocumentFormatError(`${what}: "${name}" must be a string`);
  return v;
}

export function parseCheckpointDocument(text: string): SignedCheckpoint {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new DocumentFormatError(`checkpoint: not JSON (${(err as Error).message})`);
  }
  const d = doc as { checkpoint?: Record<string, unknown>; signature?: unknown };
  if (typeof d !== "object" || d === null || typeof d.checkpoint !== "object" || d.checkpoint === null) {
    throw new DocumentFormatError('checkpoint: expected {"checkpoint": {...}, "signature": "..."}');
  }
  const c = d.checkpoint;
  if (c.type !== CHECKPOINT_TYPE || c.v !== 1) throw new DocumentFormatError(`checkpoint: type must be "${CHECKPOINT_TYPE}" and v 1`);
  const sequence = field(c, "sequence", "checkpoint");
  if (!/^\d{1,19}$/.test(sequence)) throw new DocumentFormatError("checkpoint: sequence must be a decimal string");
  if (typeof d.signature !== "string") throw new DocumentFormatError('checkpoint: "signature" must be a string');
  return {
    tenantId: field(c, "tenant_id", "checkpoint"),
    sequence: BigInt(sequence),
    hash: field(c, "hash", "checkpoint"),
    createdAt: parseMicros(field(c, "created_at", "checkpoint")),
    keyId: field(c, "key_id", "checkpoint"),
    signature: d.signature,
  };
}

/** Why `c` is not a checkpoint signed by `publicKey` (null: it is). */
export function checkpointProblem(publicKey: KeyObject, c: SignedCheckpoint): string | null {
  return signatureProblem(publicKey, "checkpoint", { keyId: c.keyId, payload: checkpointPayload(c), signature: c.signature });
}
