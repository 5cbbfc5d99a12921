// One archive object: a contiguous sequence range of one tenant's events as
// gzip-compressed NDJSON, each line exactly an export's NDJSON line
// (src/domain/export-format.ts), followed, when a signing key is configured,
// by the export's signed manifest line (src/domain/export-manifest.ts), so
// that the offline verifier reads an unzipped archive as it reads an export.
// Beside it, `<key>.manifest.json` (src/domain/retention.ts,
// ArchiveManifest) names the range, the chain hashes at both ends and the
// SHA-256 of the object as stored. Layout: docs/HASH_CHAIN.md, "Archives".
import { gunzipSync, gzipSync } from "node:zlib";
import type { StoredRecord } from "../domain/event-record.ts";
import { ManifestBuilder, manifestLine, isManifestLine } from "../domain/export-manifest.ts";
import { ndjsonLineOfRecord } from "../domain/export-format.ts";
import { recordFromNdjsonLine } from "../domain/offline-verification.ts";
import { type ArchiveManifest, archiveChainProblem, sha256Hex } from "../domain/retention.ts";
import type { SigningKey } from "../domain/signing.ts";
import { microsFromDate } from "../domain/timestamp.ts";

export type EncodedArchive = { body: Uint8Array; manifest: ArchiveManifest };

/** The object and its manifest for `records` (in sequence order, contiguous, at least one). */
export function encodeArchive(
  objectKey: string,
  records: readonly StoredRecord[],
  signingKey?: SigningKey,
  now = new Date(),
): EncodedArchive {
  const first = records[0]!;
  const last = records[records.length - 1]!;
  const signed = new ManifestBuilder({ tenantId: first.tenantId, order: "asc", complete: true });
  let text = "";
  for (const r of records) {
    const line = ndjsonLineOfRecord(r);
    signed.add(r, line);
    text += line;
  }
  const contentSha256 = sha256Hex(text);
  if (signingKey) text += manifestLine(signed.sign(signingKey, microsFromDate(now)));
  const body = gzipSync(Buffer.from(text, "utf8"));
  return {
    body,
    manifest: {
      tenantId: first.tenantId,
      objectKey,
      count: BigInt(records.length),
      firstSequence: first.sequence,
      lastSequence: last.sequence,
      firstReceivedAt: first.receivedAt,
      lastReceivedAt: last.receivedAt,
      firstPrevHash: first.prevHash,
      lastHash: last.hash,
      sha256: sha256Hex(body),
      contentSha256,
      erased: records.filter((r) => r.erased).map((r) => r.sequence),
      createdAt: microsFromDate(now),
    },
  };
}

/** The events of an archive object (its signed manifest line, if any, left out). */
export function decodeArchive(body: Uint8Array): StoredRecord[] {
  const lines = gunzipSync(body).toString("utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.filter((l) => !isManifestLine(l)).map(recordFromNdjsonLine);
}

/** Why the object is not the one `expected` describes (digest, then chain); null when it is. */
export function archiveProblem(
  body: Uint8Array,
  expected: Pick<ArchiveManifest, "sha256" | "count" | "firstSequence" | "lastSequence" | "firstPrevHash" | "lastHash">,
): string | null {
  const digest = sha256Hex(body);
  if (digest !== expected.sha256) return `SHA-256 ${digest} differs from the manifest's ${expected.sha256}`;
  return archiveChainProblem(decodeArchive(body), expected);
}
