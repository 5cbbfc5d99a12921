// VerifyChain's archived part (include_archives; docs/HASH_CHAIN.md, "The
// whole chain: archives and live rows"): the tenant's archive manifests and
// objects as the bucket holds them (not as PostgreSQL recorded them), checked
// by src/domain/archive-chain.ts, one object in memory at a time.
import type { ArchiveStore } from "../archive/object-store.ts";
import {
  type ArchiveAnchor,
  type ArchivedChainVerdict,
  type ArchiveLink,
  archiveLinkFromJson,
  archiveObjectVerdict,
  archiveSeriesBreak,
} from "../domain/archive-chain.ts";
import type { StoredRecord } from "../domain/event-record.ts";
import { sha256Hex, tenantArchivePrefix } from "../domain/retention.ts";
import { decodeArchive } from "./archive-object.ts";

const MANIFEST_SUFFIX = ".manifest.json";

/** The tenant's archive manifests in the bucket, by first sequence. */
async function manifests(archive: ArchiveStore, tenantId: string): Promise<ArchiveLink[]> {
  const keys = (await archive.list(tenantArchivePrefix(archive.prefix, tenantId))).filter((k) => k.endsWith(MANIFEST_SUFFIX));
  const out: ArchiveLink[] = [];
  for (const key of keys) {
    const body = await archive.get(key);
    if (body === null) continue; // deleted since the listing
    try {
      out.push(archiveLinkFromJson(Buffer.from(body).toString("utf8")));
    } catch (err) {
      throw new Error(`archive manifest ${key} is not readable: ${(err as Error).message}`);
    }
  }
  return out.sort((a, b) => (a.firstSequence < b.firstSequence ? -1 : a.firstSequence > b.firstSequence ? 1 : 0));
}

/** Verifies the tenant's archived chain, sequences 1..`upTo` (at most the anchor's), against the anchor. */
export async function verifyArchivedChain(
  archive: ArchiveStore,
  tenantId: string,
  anchor: ArchiveAnchor,
  upTo: bigint,
): Promise<ArchivedChainVerdict> {
  const links = await manifests(archive, tenantId);
  const seriesBreak = archiveSeriesBreak(links, anchor, upTo);
  if (seriesBreak) return { broken: seriesBreak, checked: 0n, lastHash: "" };
  let checked = 0n;
  let lastHash = "";
  for (const m of links) {
    if (m.firstSequence > upTo) break;
    const body = await archive.get(m.objectKey);
    if (body === null) {
      return {
        broken: {
          sequence: m.firstSequence,
          eventId: "",
          reason: `archive object ${m.objectKey} is missing`,
          expectedHash: "",
          storedHash: "",
        },
        checked,
        lastHash: "",
      };
    }
    let records: StoredRecord[] | { unreadable: string };
    try {
      records = decodeArchive(body);
    } catch (err) {
      records = { unreadable: (err as Error).message };
    }
    const v = archiveObjectVerdict(m, sha256Hex(body), records, anchor, upTo);
    if (v.broken) return { broken: v.broken, checked, lastHash: "" };
    checked += v.checked;
    lastHash = v.lastHash;
  }
  return { broken: null, checked, lastHash };
}
