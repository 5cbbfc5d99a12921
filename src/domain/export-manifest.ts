// The signed manifest of an NDJSON export (docs/HASH_CHAIN.md, "Export
// manifest"): one last line `{"manifest": {...}, "signature": "..."}` after
// the event lines, which stay byte-identical to an export without it. It
// names the tenant, how many events, the chain's ends (the prev_hash of the
// lowest sequence and the hash of the highest), the SHA-256 of every byte
// before the manifest line, and whether the export is the tenant's full
// range (no filter) so that the events must also form a contiguous chain.
import { createHash, type Hash, type KeyObject } from "node:crypto";
import type { StoredRecord } from "./event-record.ts";
import { DocumentFormatError } from "./checkpoint.ts";
import { canonicalJson } from "./json-canonical.ts";
import { type SigningKey, signatureProblem, signText } from "./signing.ts";
import { formatMicros, type Micros, parseMicros } from "./timestamp.ts";

export const MANIFEST_TYPE = "auditlog.export-manifest";

export type ExportManifest = {
  tenantId: string;
  /** "asc" or "desc": the order of the event lines. */
  order: "asc" | "desc";
  /** Every event of the range first..last (no filter): the events must form one unbroken chain. */
  complete: boolean;
  count: bigint;
  /** 0 when the export is empty. */
  firstSequence: bigint;
  lastSequence: bigint;
  /** prev_hash of the event at firstSequence; "" when empty. */
  firstPrevHash: string;
  /** hash of the event at lastSequence; "" when empty. */
  lastHash: string;
  /** Hex SHA-256 of the bytes before the manifest line. */
  sha256: string;
  createdAt: Micros;
  keyId: string;
};

export type SignedManifest = ExportManifest & { signature: string };

function payloadFields(m: ExportManifest) {
  return {
    type: MANIFEST_TYPE,
    v: 1,
    tenant_id: m.tenantId,
    order: m.order,
    complete: m.complete,
    count: m.count.toString(),
    first_sequence: m.firstSequence.toString(),
    last_sequence: m.lastSequence.toString(),
    first_prev_hash: m.firstPrevHash,
    last_hash: m.lastHash,
    sha256: m.sha256,
    created_at: formatMicros(m.createdAt),
    key_id: m.keyId,
  };
}

/** The exact text whose UTF-8 bytes are signed. */
export function manifestPayload(m: ExportManifest): string {
  return canonicalJson(payloadFields(m));
}

/** The manifest line, "\n"-terminated: the payload fields (canonical JSON) and the signature. */
export function manifestLine(m: SignedManifest): string {
  return `{"manifest":${manifestPayload(m)},"signature":${JSON.stringify(m.signature)}}\n`;
}

/** Accumulates what the manifest says while the export's bytes go by. */
export class ManifestBuilder {
  private readonly digest: Hash = createHash("sha256");
  private count = 0n;
  private first: StoredRecord | null = null;
  private last: StoredRecord | null = null;
  private readonly tenantId: string;
  private readonly order: "asc" | "desc";
  private readonly complete: boolean;

  constructor(opts: { tenantId: string; order: "asc" | "desc"; complete: boolean }) {
    this.tenantId = opts.tenantId;
    this.order = opts.order;
    this.complete = opts.complete;
  }

  /** One exported event and the bytes written for it. */
  add(r: StoredRecord, text: string): void {
    this.digest.update(text, "utf8");
    this.count++;
    if (this.first === null || r.sequence < this.first.sequence) this.first = r;
    if (this.last === null || r.sequence > this.last.sequence) this.last = r;
  }

  sign(key: SigningKey, now: Micros): SignedManifest {
    const m: ExportManifest = {
      tenantId: this.tenantId,
      order: this.order,
      complete: this.complete,
      count: this.count,
      firstSequence: this.first?.sequence ?? 0n,
      lastSequence: this.last?.sequence ?? 0n,
      firstPrevHash: this.first?.prevHash ?? "",
      lastHash: this.last?.hash ?? "",
      sha256: this.digest.digest("hex"),
      createdAt: now,
      keyId: key.keyId,
    };
    return { ...m, signature: signText(key, manifestPayload(m)) };
  }
}

function str(o: Record<string, unknown>, name: string): string {
  const v = o[name];
  if (typeof v !== "string") throw new DocumentFormatError(`manifest: "${name}" must be a string`);
  return v;
}

function decimal(o: Record<string, unknown>, name: string): bigint {
  const v = str(o, name);
  if (!/^\d{1,19}$/.test(v)) throw new DocumentFormatError(`manifest: "${name}" must be a decimal string`);
  return BigInt(v);
}

/** Is this line (without its "\n") a manifest line? Event lines start with {"event": */
export function isManifestLine(line: string): boolean {
  return line.startsWith('{"manifest":');
}

export function parseManifestLine(line: string): SignedManifest {
  let doc: { manifest?: Record<string, unknown>; signature?: unknown };
  try {
    doc = JSON.parse(line);
  } catch (err) {
    throw new DocumentFormatError(`manifest: not JSON (${(err as Error).message})`);
  }
  const m = doc.manifest;
  if (typeof m !== "object" || m === null || m.type !== MANIFEST_TYPE || m.v !== 1) {
    throw new DocumentFormatError(`manifest: expected {"manifest": {"type": "${MANIFEST_TYPE}", "v": 1, ...}, "signature": "..."}`);
  }
  const order = str(m, "order");
  if (order !== "asc" && order !== "desc") throw new DocumentFormatError('manifest: "order" must be "asc" or "desc"');
  if (typeof m.complete !== "boolean") throw new DocumentFormatError('manifest: "complete" must be true or false');
  if (typeof doc.signature !== "string") throw new DocumentFormatError('manifest: "signature" must be a string');
  return {
    tenantId: str(m, "tenant_id"),
    order,
    complete: m.complete,
    count: decimal(m, "count"),
    firstSequence: decimal(m, "first_sequence"),
    lastSequence: decimal(m, "last_sequence"),
    firstPrevHash: str(m, "first_prev_hash"),
    lastHash: str(m, "last_hash"),
    sha256: str(m, "sha256"),
    createdAt: parseMicros(str(m, "created_at")),
    keyId: str(m, "key_id"),
    signature: doc.signature,
  };
}

/** Why `m` is not a manifest signed by `publicKey` (null: it is). */
export function manifestProblem(publicKey: KeyObject, m: SignedManifest): string | null {
  return signatureProblem(publicKey, "manifest", { keyId: m.keyId, payload: manifestPayload(m), signature: m.signature });
}
