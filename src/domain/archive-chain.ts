// The archived part of a tenant's chain (docs/HASH_CHAIN.md, "The whole
// chain: archives and live rows"): the archive objects, in sequence order,
// must cover sequences 1..the chain anchor without a gap or an overlap, each
// continuing from the hash the previous one ends with and the last reaching
// the anchor (where the live rows begin); and each object's events must
// verify as a chain between its manifest's ends, by the same ChainVerifier
// VerifyChain uses on live rows.
import type { StoredRecord } from "./event-record.ts";
import { type ChainBreak, ChainVerifier, contentHash, GENESIS_HASH } from "./hash-chain.ts";
import { ARCHIVE_MANIFEST_TYPE, type ArchiveManifest } from "./retention.ts";

/** What the chain check needs of an archive manifest. */
export type ArchiveLink = Pick<
  ArchiveManifest,
  "objectKey" | "count" | "firstSequence" | "lastSequence" | "firstPrevHash" | "lastHash" | "sha256"
>;

/** The last event retention removed from PostgreSQL (its sequence and hash). */
export type ArchiveAnchor = { sequence: bigint; hash: string };

/** The archived part's verdict: the first break, or the events checked and the hash at `upTo`. */
export type ArchivedChainVerdict = { broken: ChainBreak | null; checked: bigint; lastHash: string };

/** An archive manifest object (`<key>.manifest.json`) as the fields the chain check needs; throws when it is not one. */
export function archiveLinkFromJson(text: string): ArchiveLink {
  const j = JSON.parse(text) as Record<string, unknown>;
  if (j.type !== ARCHIVE_MANIFEST_TYPE) throw new Error(`not an ${ARCHIVE_MANIFEST_TYPE}`);
  const str = (k: string): string => {
    if (typeof j[k] !== "string") throw new Error(`${k} is missing`);
    return j[k];
  };
  const seq = (k: string): bigint => {
    const v = str(k);
    if (!/^\d{1,19}$/.test(v)) throw new Error(`${k} is not a sequence`);
    return BigInt(v);
  };
  return {
    objectKey: str("object_key"),
    count: seq("count"),
    firstSequence: seq("first_sequence"),
    lastSequence: seq("last_sequence"),
    firstPrevHash: str("first_prev_hash"),
    lastHash: str("last_hash"),
    sha256: str("sha256"),
  };
}

function broken(sequence: bigint, reason: string, at?: { eventId?: string; expectedHash?: string; storedHash?: string }): ChainBreak {
  return { sequence, reason, eventId: at?.eventId ?? "", expectedHash: at?.expectedHash ?? "", storedHash: at?.storedHash ?? "" };
}

/**
 * The first break in the series of archive manifests (sorted by first
 * sequence) that should hold sequences 1..`upTo` (`upTo` at most the
 * anchor's sequence); null when they link up. Manifests starting after
 * `upTo` are not looked at.
 */
export function archiveSeriesBreak(links: readonly ArchiveLink[], anchor: ArchiveAnchor, upTo: bigint): ChainBreak | null {
  let expected = 1n;
  let prev = GENESIS_HASH;
  let last: ArchiveLink | null = null;
  for (const m of links) {
    if (m.firstSequence > upTo) break;
    if (m.firstSequence > expected) return broken(expected, `event at sequence ${expected} is missing: no archive object holds it`);
    if (m.firstSequence < expected) {
      return broken(m.firstSequence, `sequence ${m.firstSequence} is out of order: archive ${m.objectKey} overlaps the one before it`);
    }
    if (m.firstPrevHash !== prev) {
      return broken(
        m.firstSequence,
        `link broken: archive ${m.objectKey} continues from ${m.firstPrevHash}, the archive before it ends with ${prev}`,
        { expectedHash: prev, storedHash: m.firstPrevHash },
      );
    }
    expected = m.lastSequence + 1n;
    prev = m.lastHash;
    last = m;
  }
  if (expected <= upTo) return broken(expected, `event at sequence ${expected} is missing: no archive object holds it`);
  if (last && last.lastSequence === anchor.sequence && last.lastHash !== anchor.hash) {
    return broken(
      anchor.sequence,
      `link broken: archive ${last.objectKey} ends with ${last.lastHash}, the chain anchor (where the live rows begin) is ${anchor.hash}`,
      { expectedHash: anchor.hash, storedHash: last.lastHash },
    );
  }
  return null;
}

/**
 * One archive object's verdict: its events (null when it cannot be read,
 * with why) must be the chain its manifest names, the event at the anchor's
 * sequence must have the anchor's hash, and its bytes the manifest's
 * SHA-256 (`digest`). Events after `upTo` are verified but not counted.
 */
export function archiveObjectVerdict(
  m: ArchiveLink,
  digest: string,
  records: readonly StoredRecord[] | { unreadable: string },
  anchor: ArchiveAnchor,
  upTo: bigint,
): ArchivedChainVerdict {
  const fail = (b: ChainBreak) => ({ broken: b, checked: 0n, lastHash: "" });
  if (!Array.isArray(records)) {
    return fail(broken(m.firstSequence, `archive ${m.objectKey} cannot be read: ${(records as { unreadable: string }).unreadable}`));
  }
  const verifier = new ChainVerifier(m.firstSequence, m.firstPrevHash);
  let checked = 0n;
  let lastHash = "";
  for (const r of records as readonly StoredRecord[]) {
    // An archive line does not carry the content hash: the chain hash binds it, recomputed from the content.
    const b = verifier.next(r.erased ? r : { ...r, contentHash: contentHash(r) });
    if (b) return fail({ ...b, reason: `${b.reason} (archive ${m.objectKey})` });
    if (r.sequence === anchor.sequence && r.hash !== anchor.hash) {
      return fail(
        broken(
          r.sequence,
          `link broken: the chain anchor (where the live rows begin) is ${anchor.hash}, archive ${m.objectKey} holds ${r.hash}`,
          {
            eventId: r.id,
            expectedHash: anchor.hash,
            storedHash: r.hash,
          },
        ),
      );
    }
    if (r.sequence <= upTo) {
      checked++;
      lastHash = r.hash;
    }
  }
  const gap = verifier.finish(m.lastSequence);
  if (gap) return fail({ ...gap, reason: `${gap.reason} (archive ${m.objectKey})` });
  if (BigInt(records.length) !== m.count || verifier.lastHash !== m.lastHash) {
    return fail(broken(m.lastSequence, `archive ${m.objectKey} does not end with the event its manifest names`));
  }
  if (digest !== m.sha256) {
    return fail(
      broken(m.firstSequence, `archive ${m.objectKey}'s SHA-256 ${digest} differs from its manifest's ${m.sha256}: its bytes were changed`),
    );
  }
  return { broken: null, checked, lastHash };
}
