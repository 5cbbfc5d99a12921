// Offline verification of a tenant's archive windows as downloaded from the
// bucket (`npm run verify -- --archives <dir>`; docs/HASH_CHAIN.md, "Offline
// verification of archived windows"), optionally followed by an export of the
// live rows, against a signed checkpoint and the public keys, without the
// service or its database.
//
// The windows (one `<key>.manifest.json` and its object each), sorted by
// first sequence, must cover the chain from sequence 1 (or from a given
// anchor) without a gap or an overlap, each continuing from the hash the one
// before ends with. Each object must carry an export manifest signed by one
// of the keys naming the same range and ends as the manifest beside it, hold
// exactly that range's events, each verifying by the chain walk VerifyChain
// uses (ChainVerifier), and have the SHA-256 its manifest names. The export
// is checked like any export (verifyStoredEvents) and must continue where the
// archives end (or overlap them with the same hashes). The checkpoint must
// lie on the verified chain. The first failure in sequence order is named:
// the event (sequence, id, line), the object or the window.
import type { KeyObject } from "node:crypto";
import { type ArchiveAnchor, type ArchiveLink, archiveLinkFromJson } from "./archive-chain.ts";
import { checkpointProblem, type SignedCheckpoint } from "./checkpoint.ts";
import type { StoredRecord } from "./event-record.ts";
import { manifestProblem } from "./export-manifest.ts";
import { ChainVerifier, contentHash, GENESIS_HASH } from "./hash-chain.ts";
import {
  type FailureKind,
  readNdjsonExport,
  type StoredEventsInput,
  type VerificationFailure,
  verifyStoredEvents,
} from "./offline-verification.ts";
import { sha256Hex } from "./retention.ts";
import { keyIdOf } from "./signing.ts";

/** An archive manifest file (`<key>.manifest.json`) and where it was found. */
export type ManifestFile = { name: string; text: string };

/** An archive object as found: its bytes as stored and, when they gunzip, the NDJSON inside. */
export type ArchiveObjectFile = { stored: Uint8Array; ndjson: Buffer } | { stored: Uint8Array; unreadable: string };

export type ArchiveFolderInput = {
  manifests: readonly ManifestFile[];
  /** Objects that no manifest file stands beside (named in a gap's reason, listed when all else passes). */
  strayObjects: readonly string[];
  /** The object beside manifest file `name`; null when it is not there. Asked once per window, in sequence order. */
  readObject: (manifestName: string) => ArchiveObjectFile | null;
  /** Where the windows start: after this sequence and hash. Default: sequence 0 and 64 zeros (the chain's start). */
  from?: ArchiveAnchor;
  /** An export of the live rows that continues the archived chain (complete, with its signed manifest). */
  live?: StoredEventsInput;
};

/** The failure, with the object or file at fault ("" when none). */
export type ArchiveFolderFailure = VerificationFailure & { object: string };

export type ArchiveFolderResult =
  | {
      ok: true;
      tenantId: string;
      windows: number;
      /** The archived range verified, (from.sequence, archivedTo]; archivedTo = from.sequence when no window. */
      from: ArchiveAnchor;
      archivedTo: bigint;
      archivedEvents: bigint;
      live: { firstSequence: bigint; lastSequence: bigint; count: bigint } | null;
      /** The checkpoint's sequence: every event up to it is vouched for by the checkpoint. */
      anchoredAt: bigint;
      /** Manifests left aside: of other tenants, and windows that end at or before `from`. */
      otherTenants: number;
      beforeFrom: number;
      strayObjects: readonly string[];
    }
  | { ok: false; failure: ArchiveFolderFailure };

type Window = { name: string; link: ArchiveLink; tenantId: string; contentSha256: string };

type At = { sequence?: bigint | null; eventId?: string; position?: number | null; object?: string };

/** A sequence whose hash is known from elsewhere: an archived event there must have it. */
type Pin = { hash: string; what: string; kind: FailureKind };

function fail(kind: FailureKind, reason: string, at: At = {}): { ok: false; failure: ArchiveFolderFailure } {
  return {
    ok: false,
    failure: {
      kind,
      reason,
      sequence: at.sequence ?? null,
      eventId: at.eventId ?? "",
      position: at.position ?? null,
      object: at.object ?? "",
    },
  };
}

function named(r: StoredRecord): string {
  return `sequence ${r.sequence} (id ${r.id})`;
}

/** The window a manifest file describes; throws when the file is not an archive manifest. */
function windowOf(f: ManifestFile): Window {
  const link = archiveLinkFromJson(f.text);
  const j = JSON.parse(f.text) as Record<string, unknown>;
  if (typeof j.tenant_id !== "string") throw new Error("tenant_id is missing");
  if (typeof j.content_sha256 !== "string") throw new Error("content_sha256 is missing");
  if (link.count < 1n || link.lastSequence - link.firstSequence + 1n !== link.count) {
    throw new Error(`count ${link.count} does not fit sequences ${link.firstSequence}..${link.lastSequence}`);
  }
  return { name: f.name, link, tenantId: j.tenant_id, contentSha256: j.content_sha256 };
}

/** The key among `keys` whose key id is `keyId`, else the first (whose key id the refusal then names). */
function keyFor(keys: readonly KeyObject[], keyId: string): KeyObject {
  return keys.find((k) => keyIdOf(k) === keyId) ?? keys[0]!;
}

function range(first: bigint, last: bigint): string {
  return first === last ? `sequence ${first}` : `sequences ${first}..${last}`;
}

export function verifyArchiveFolder(
  input: ArchiveFolderInput,
  checkpoint: SignedCheckpoint,
  publicKeys: readonly KeyObject[],
): ArchiveFolderResult {
  if (publicKeys.length === 0) throw new Error("at least one public key is needed");
  const cpProblem = checkpointProblem(keyFor(publicKeys, checkpoint.keyId), checkpoint);
  if (cpProblem) return fail("checkpoint", cpProblem);
  const tenantId = checkpoint.tenantId;
  const from = input.from ?? { sequence: 0n, hash: GENESIS_HASH };
  if (checkpoint.sequence < from.sequence) {
    return fail(
      "checkpoint",
      `the checkpoint (sequence ${checkpoint.sequence}) lies before the anchor the windows start after (${from.sequence})`,
    );
  }

  const windows: Window[] = [];
  let otherTenants = 0;
  for (const f of input.manifests) {
    let w: Window;
    try {
      w = windowOf(f);
    } catch (err) {
      return fail("format", `${f.name} is not an archive manifest: ${(err as Error).message}`, { object: f.name });
    }
    if (w.tenantId === tenantId) windows.push(w);
    else otherTenants++;
  }
  windows.sort((a, b) => (a.link.firstSequence < b.link.firstSequence ? -1 : a.link.firstSequence > b.link.firstSequence ? 1 : 0));
  const relevant = windows.filter((w) => w.link.lastSequence > from.sequence);
  const archivedEnd = relevant.at(-1)?.link.lastSequence ?? from.sequence;

  // The export first: its events pin the archived ones it overlaps, but only once it verifies itself.
  const live = input.live;
  const liveVerdict = live ? verifyStoredEvents(live, checkpoint, keyFor(publicKeys, live.manifest.keyId)) : null;
  const pins = new Map<bigint, Pin>();
  pins.set(checkpoint.sequence, { hash: checkpoint.hash, what: "the signed checkpoint", kind: "checkpoint" });
  if (from.sequence > 0n) pins.set(from.sequence, { hash: from.hash, what: "the anchor given", kind: "altered" });
  if (live && liveVerdict?.ok && live.manifest.complete && live.manifest.count > 0n) {
    const what = "the export's event there";
    pins.set(live.manifest.firstSequence - 1n, {
      hash: live.manifest.firstPrevHash,
      what: "the export's first prev_hash",
      kind: "altered",
    });
    for (const e of live.entries) {
      if ("record" in e && e.record.sequence <= archivedEnd) pins.set(e.record.sequence, { hash: e.record.hash, what, kind: "altered" });
    }
  }

  let expected = from.sequence + 1n;
  let prevHash = from.hash;
  let prevName = from.sequence === 0n ? "the chain's start" : `the anchor at sequence ${from.sequence}`;
  let archivedEvents = 0n;
  const strays = input.strayObjects.length ? ` (objects without a manifest in the folder: ${input.strayObjects.join(", ")})` : "";
  if (relevant.length === 0 && !live) return fail("missing", `the folder holds no archive window of tenant "${tenantId}"${strays}`);
  for (const [i, w] of relevant.entries()) {
    const m = w.link;
    const at = { sequence: m.firstSequence, object: w.name };
    if (m.firstSequence > expected) {
      return fail(
        "missing",
        `${range(expected, m.firstSequence - 1n)} missing: no archive window holds them (the next is ${w.name})${strays}`,
        {
          sequence: expected,
        },
      );
    }
    if (m.firstSequence < expected && i > 0) {
      return fail(
        "reordered",
        `window ${w.name} (${range(m.firstSequence, m.lastSequence)}) overlaps the window before it, which ends at ${expected - 1n}`,
        at,
      );
    }
    if (m.firstSequence === expected && m.firstPrevHash !== prevHash) {
      return fail("altered", `link broken: window ${w.name} continues from ${m.firstPrevHash}, ${prevName} ends with ${prevHash}`, at);
    }
    const broken = checkWindow(w, input.readObject(w.name), tenantId, publicKeys, pins);
    if (broken) return broken;
    archivedEvents += m.lastSequence - (m.firstSequence > from.sequence ? m.firstSequence : from.sequence + 1n) + 1n;
    expected = m.lastSequence + 1n;
    prevHash = m.lastHash;
    prevName = `window ${w.name}`;
  }

  if (live && liveVerdict) {
    if (!liveVerdict.ok) return { ok: false, failure: { ...liveVerdict.failure, object: "the export" } };
    const lm = live.manifest;
    if (!lm.complete) {
      return fail("format", "the export is filtered: only a complete export (no filter) continues the chain", { object: "the export" });
    }
    if (lm.count > 0n) {
      if (lm.firstSequence > expected) {
        return fail("missing", `${range(expected, lm.firstSequence - 1n)} missing: between the last archive window and the export`, {
          sequence: expected,
        });
      }
      const joint = lm.firstSequence - 1n;
      // At or inside the archived range, the pins compared the export with the archived events; at its end, or before it, compare here.
      const knownHash = joint === archivedEnd ? prevHash : joint === from.sequence ? from.hash : null;
      if (knownHash !== null && lm.firstPrevHash !== knownHash) {
        return fail("altered", `link broken: the export continues from ${lm.firstPrevHash}, ${prevName} ends with ${knownHash}`, {
          sequence: lm.firstSequence,
          object: "the export",
        });
      }
      if (joint < from.sequence) {
        const atAnchor = live.entries.find((e) => "record" in e && e.record.sequence === from.sequence);
        if (atAnchor && "record" in atAnchor && atAnchor.record.hash !== from.hash) {
          return fail(
            "altered",
            `${named(atAnchor.record)} in the export has hash ${atAnchor.record.hash}, the anchor given ${from.hash}`,
            {
              sequence: from.sequence,
              eventId: atAnchor.record.id,
              position: atAnchor.position,
              object: "the export",
            },
          );
        }
      }
    }
  } else if (checkpoint.sequence > archivedEnd) {
    return fail(
      "checkpoint",
      `the checkpoint (sequence ${checkpoint.sequence}) lies beyond the archived windows (up to ${archivedEnd}): add an export of the live rows (--export)`,
    );
  } else if (checkpoint.sequence === from.sequence && checkpoint.hash !== from.hash) {
    return fail("checkpoint", `the anchor given has hash ${from.hash}, the signed checkpoint at the same sequence ${checkpoint.hash}`, {
      sequence: from.sequence,
    });
  }

  return {
    ok: true,
    tenantId,
    windows: relevant.length,
    from,
    archivedTo: archivedEnd,
    archivedEvents,
    live: live
      ? { firstSequence: live.manifest.firstSequence, lastSequence: live.manifest.lastSequence, count: live.manifest.count }
      : null,
    anchoredAt: checkpoint.sequence,
    otherTenants,
    beforeFrom: windows.length - relevant.length,
    strayObjects: input.strayObjects,
  };
}

/** The first failure of one window's object (null: it is the window its manifest names, signed, every event verified). */
function checkWindow(
  w: Window,
  obj: ArchiveObjectFile | null,
  tenantId: string,
  publicKeys: readonly KeyObject[],
  pins: ReadonlyMap<bigint, Pin>,
): { ok: false; failure: ArchiveFolderFailure } | null {
  const m = w.link;
  const object = w.name.replace(/\.manifest\.json$/, "");
  const at = { sequence: m.firstSequence, object };
  if (obj === null) return fail("missing", `archive object ${object} (${range(m.firstSequence, m.lastSequence)}) is missing`, at);
  if ("unreadable" in obj) return fail("altered", `archive object ${object} cannot be read: ${obj.unreadable}`, at);
  let read: StoredEventsInput;
  try {
    read = readNdjsonExport(obj.ndjson);
  } catch (err) {
    return fail("manifest", `archive object ${object} carries no signed manifest: ${(err as Error).message}`, at);
  }
  const signed = read.manifest;
  const problem = manifestProblem(keyFor(publicKeys, signed.keyId), signed);
  if (problem) return fail("manifest", `archive object ${object}: ${problem}`, at);
  if (signed.tenantId !== tenantId) return fail("manifest", `archive object ${object} is signed as tenant "${signed.tenantId}"'s`, at);
  if (!signed.complete || signed.order !== "asc") {
    return fail("manifest", `archive object ${object}'s signed manifest is not that of a complete window in ascending order`, at);
  }
  // The signed range against the manifest beside it: an object swapped with another or renamed names another window.
  if (signed.firstSequence !== m.firstSequence || signed.lastSequence !== m.lastSequence) {
    return fail(
      "reordered",
      `archive object ${object} holds ${range(signed.firstSequence, signed.lastSequence)} (its signed manifest), ` +
        `its manifest ${w.name} names ${range(m.firstSequence, m.lastSequence)}: objects were swapped, moved or renamed`,
      at,
    );
  }
  if (signed.count !== m.count || signed.firstPrevHash !== m.firstPrevHash || signed.lastHash !== m.lastHash) {
    return fail("manifest", `the manifest ${w.name} names other chain ends or count than the object's signed manifest`, at);
  }

  const present = new Set<bigint>();
  for (const e of read.entries) if ("record" in e) present.add(e.record.sequence);
  const verifier = new ChainVerifier(m.firstSequence, m.firstPrevHash);
  let next = m.firstSequence;
  let prev: StoredRecord | null = null;
  for (const e of read.entries) {
    if (!("record" in e)) {
      return fail("altered", `line ${e.position} of archive object ${object} is not a stored event: ${e.unreadable}`, { ...e, object });
    }
    const r = e.record;
    const here = { sequence: r.sequence, eventId: r.id, position: e.position, object };
    if (r.tenantId !== tenantId) return fail("altered", `${named(r)} in archive object ${object} names tenant "${r.tenantId}"`, here);
    if (r.sequence !== next) {
      if (r.sequence < next || present.has(next)) {
        return fail("reordered", `${named(r)} is out of order in archive object ${object}: sequence ${next} should come first`, here);
      }
      const after = prev ? `after ${named(prev)}` : "at the start";
      return fail("missing", `the event at sequence ${next} is missing from archive object ${object} (${after}, before ${named(r)})`, {
        sequence: next,
        position: e.position,
        object,
      });
    }
    // An archive line does not carry the content hash (erased events excepted): the chain hash binds it, recomputed from the content.
    const b = verifier.next(r.erased ? r : { ...r, contentHash: contentHash(r) });
    if (b) return fail("altered", `${named(r)} in archive object ${object}: ${b.reason}`, here);
    const pin = pins.get(r.sequence);
    if (pin && pin.hash !== r.hash) {
      return fail(pin.kind, `${named(r)} in archive object ${object} has hash ${r.hash}, ${pin.what} ${pin.hash}`, here);
    }
    next++;
    prev = r;
  }
  const gap = verifier.finish(m.lastSequence);
  if (gap) return fail("missing", `${gap.reason}: archive object ${object} ends early`, { sequence: gap.sequence, object });
  if (verifier.lastHash !== m.lastHash) {
    return fail("altered", `archive object ${object} does not end with the hash its manifests name`, { sequence: m.lastSequence, object });
  }
  if (read.contentSha256 !== signed.sha256) {
    return fail(
      "altered",
      `archive object ${object}'s bytes differ from what its manifest signed (SHA-256), outside any event's hashed fields`,
      at,
    );
  }
  if (w.contentSha256 !== signed.sha256) {
    return fail("manifest", `the manifest ${w.name} names another content SHA-256 than the object's signed manifest`, at);
  }
  const digest = sha256Hex(obj.stored);
  if (digest !== m.sha256) {
    return fail(
      "altered",
      `archive object ${object}'s SHA-256 ${digest} differs from its manifest's ${m.sha256}: its bytes were changed`,
      at,
    );
  }
  return null;
}
