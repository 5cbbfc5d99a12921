// Retention policies and archive objects, apart from how they are stored
// (docs/ARCHITECTURE.md, "Data lifecycle").
//
// A policy has two periods, in days, 0 meaning forever: `searchableDays`
// (events stay in Elasticsearch that long after received_at) and `keepDays`
// (they stay in PostgreSQL that long, then go to an archive object and are
// deleted). Retention removes a tenant's events as a prefix of its chain:
// the longest run of lowest sequences whose received_at is before the
// cutoff. The chain then starts after a known anchor (the last removed
// event's sequence and hash) and stays verifiable; an expired event that
// follows a younger one waits until that one expires too (received_at
// follows the sequence within the microseconds a batch takes).
import { createHash } from "node:crypto";
import type { StoredRecord } from "./event-record.ts";
import { ChainVerifier, contentHash } from "./hash-chain.ts";
import { canonicalJson } from "./json-canonical.ts";
import { formatMicros, type Micros } from "./timestamp.ts";

export type RetentionPolicy = { searchableDays: number; keepDays: number };

/** The longest period a policy may name: 100 years. */
export const MAX_RETENTION_DAYS = 36_500;

export class RetentionPolicyError extends Error {
  readonly field: string;
  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = "RetentionPolicyError";
    this.field = field;
  }
}

/** Throws RetentionPolicyError naming the field when the policy cannot be applied. */
export function checkPolicy(p: RetentionPolicy, archiveConfigured: boolean): void {
  for (const [field, v] of [
    ["searchable_days", p.searchableDays],
    ["keep_days", p.keepDays],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > MAX_RETENTION_DAYS) throw new RetentionPolicyError(field, `must be 0..${MAX_RETENTION_DAYS}`);
  }
  if (p.keepDays > 0 && p.searchableDays > p.keepDays) {
    throw new RetentionPolicyError("searchable_days", "must not exceed keep_days: events leave the search index before PostgreSQL");
  }
  if (p.keepDays > 0 && p.searchableDays === 0) {
    throw new RetentionPolicyError("searchable_days", "must be set (at most keep_days) when keep_days is set");
  }
  if (p.keepDays > 0 && !archiveConfigured) {
    throw new RetentionPolicyError(
      "keep_days",
      "no archive is configured (AUDITLOG_ARCHIVE_S3_BUCKET): events are never deleted without an archive; use 0 (forever)",
    );
  }
}

const DAY_MS = 86_400_000;

/** Events received before this instant are past a period of `days` (null: forever). */
export function cutoff(now: Date, days: number): Date | null {
  return days > 0 ? new Date(now.getTime() - days * DAY_MS) : null;
}

/** How many of `records` (in sequence order, contiguous) form the expired prefix. */
export function expiredPrefixLength(records: readonly StoredRecord[], before: Date): number {
  const limit = BigInt(before.getTime()) * 1000n;
  let n = 0;
  while (n < records.length && records[n]!.receivedAt < limit) n++;
  return n;
}

/** Where a tenant's archive objects are, under the bucket's key prefix: every key of the tenant starts with it, no other does. */
export function tenantArchivePrefix(prefix: string, tenantId: string): string {
  return `${prefix}${encodeURIComponent(tenantId)}/`;
}

/** The object key of an archive: by tenant, month of the first event's received_at, and sequence range. */
export function archiveObjectKey(prefix: string, tenantId: string, first: StoredRecord, lastSequence: bigint): string {
  const month = formatMicros(first.receivedAt).slice(0, 7);
  const seq = (s: bigint) => s.toString().padStart(20, "0");
  return `${tenantArchivePrefix(prefix, tenantId)}${month}/${seq(first.sequence)}-${seq(lastSequence)}.ndjson.gz`;
}

export const ARCHIVE_MANIFEST_TYPE = "auditlog.archive-manifest";

/** What the manifest beside an archive object says (`<key>.manifest.json`). */
export type ArchiveManifest = {
  tenantId: string;
  objectKey: string;
  count: bigint;
  firstSequence: bigint;
  lastSequence: bigint;
  firstReceivedAt: Micros;
  lastReceivedAt: Micros;
  /** prev_hash of the first event: the hash the archive continues from. */
  firstPrevHash: string;
  /** hash of the last event: the next event's prev_hash. */
  lastHash: string;
  /** Hex SHA-256 of the object's bytes as stored (gzip). */
  sha256: string;
  /** Hex SHA-256 of the uncompressed NDJSON. */
  contentSha256: string;
  /** Sequences of erased events in the object (rewritten by an erasure). */
  erased: bigint[];
  createdAt: Micros;
};

export function archiveManifestJson(m: ArchiveManifest): string {
  return canonicalJson({
    type: ARCHIVE_MANIFEST_TYPE,
    v: 1,
    tenant_id: m.tenantId,
    object_key: m.objectKey,
    count: m.count.toString(),
    first_sequence: m.firstSequence.toString(),
    last_sequence: m.lastSequence.toString(),
    first_received_at: formatMicros(m.firstReceivedAt),
    last_received_at: formatMicros(m.lastReceivedAt),
    first_prev_hash: m.firstPrevHash,
    last_hash: m.lastHash,
    sha256: m.sha256,
    content_sha256: m.contentSha256,
    erased: m.erased.map(String),
    created_at: formatMicros(m.createdAt),
  });
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Why `records` (an archive's events in file order) do not form the chain its manifest names (null: they do). */
export function archiveChainProblem(
  records: readonly StoredRecord[],
  m: Pick<ArchiveManifest, "count" | "firstSequence" | "lastSequence" | "firstPrevHash" | "lastHash">,
): string | null {
  if (BigInt(records.length) !== m.count) return `holds ${records.length} events, the manifest says ${m.count}`;
  const verifier = new ChainVerifier(m.firstSequence, m.firstPrevHash);
  for (const r of records) {
    // An archive line does not carry the content hash: the chain hash binds it, recomputed from the content.
    const b = verifier.next(r.erased ? r : { ...r, contentHash: contentHash(r) });
    if (b) return `event at sequence ${b.sequence} does not verify: ${b.reason}`;
  }
  if (m.firstSequence + m.count - 1n !== m.lastSequence || verifier.lastHash !== m.lastHash) {
    return "the last event is not the one the manifest names";
  }
  return null;
}
