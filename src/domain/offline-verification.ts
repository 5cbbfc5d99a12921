// Offline verification (scripts/verify.ts; docs/HASH_CHAIN.md, "Offline
// verification"): a sequence of stored events with their signed manifest,
// checked against a signed checkpoint and the public key, without the
// service or its database. The input is "events in file order + manifest +
// the SHA-256 of the bytes the manifest covers", whatever file held them:
// readNdjsonExport makes it from an export; an archive reader makes the same
// from an archive (layout in docs/HASH_CHAIN.md).
//
// What passes means: every event is authentic (its content and chain hash
// recompute to its stored hash, and the hash chain's key-signed ends and
// byte digest match the manifest); for a complete export also that the
// events are one unbroken chain, none missing, none reordered; and where the
// checkpoint's sequence lies in the file, that the chain reaches the signed
// head.
import { createHash, type KeyObject } from "node:crypto";
import { fromJsonString } from "@bufbuild/protobuf";
import { StoredEventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { checkpointProblem, type SignedCheckpoint } from "./checkpoint.ts";
import { recordFromEvent, type StoredRecord } from "./event-record.ts";
import { isManifestLine, manifestProblem, parseManifestLine, type SignedManifest } from "./export-manifest.ts";
import { chainHash, contentHash } from "./hash-chain.ts";
import { microsFromTimestamp } from "./timestamp.ts";

/** One stored event as the file holds it; `position` is its place in the file (the line number of an export, 1-based). */
export type EventEntry =
  | { position: number; record: StoredRecord }
  | { position: number; unreadable: string; sequence: bigint | null; eventId: string };

export type FailureKind = "checkpoint" | "manifest" | "altered" | "missing" | "reordered" | "format";

export type VerificationFailure = {
  kind: FailureKind;
  /** The event at fault, when one can be named. */
  sequence: bigint | null;
  eventId: string;
  position: number | null;
  reason: string;
};

export type VerificationResult =
  | {
      ok: true;
      tenantId: string;
      count: bigint;
      firstSequence: bigint;
      lastSequence: bigint;
      complete: boolean;
      /** The checkpoint's sequence when the file reaches it; null when it lies outside the file (only possible for a filtered export). */
      anchoredAt: bigint | null;
    }
  | { ok: false; failure: VerificationFailure };

export type StoredEventsInput = {
  entries: readonly EventEntry[];
  manifest: SignedManifest;
  /** Hex SHA-256 of the bytes the manifest covers. */
  contentSha256: string;
};

function fail(kind: FailureKind, reason: string, at?: { sequence?: bigint | null; eventId?: string; position?: number | null }) {
  return {
    ok: false as const,
    failure: { kind, reason, sequence: at?.sequence ?? null, eventId: at?.eventId ?? "", position: at?.position ?? null },
  };
}

function named(r: StoredRecord): string {
  return `sequence ${r.sequence} (id ${r.id})`;
}

/** Why the event's stored hashes do not recompute from its fields (null: they do). */
function selfProblem(r: StoredRecord): string | null {
  // An erased event's content is gone; its stored content hash is what the chain hash binds (docs/HASH_CHAIN.md, "Erased events").
  const content = r.erased ? r.contentHash : contentHash(r);
  if (chainHash(r.prevHash, { ...r, contentHash: content }) === r.hash) return null;
  return "altered: its fields no longer match its hash (content, sequence, time, tenant or prev_hash changed)";
}

export function verifyStoredEvents(input: StoredEventsInput, checkpoint: SignedCheckpoint, publicKey: KeyObject): VerificationResult {
  const { entries, manifest } = input;
  const cpProblem = checkpointProblem(publicKey, checkpoint);
  if (cpProblem) return fail("checkpoint", cpProblem);
  const mProblem = manifestProblem(publicKey, manifest);
  if (mProblem) return fail("manifest", mProblem);
  if (manifest.tenantId !== checkpoint.tenantId) {
    return fail("checkpoint", `the checkpoint is tenant "${checkpoint.tenantId}"'s, the export tenant "${manifest.tenantId}"'s`);
  }

  const asc = manifest.order === "asc";
  const present = new Set<bigint>();
  for (const e of entries) if ("record" in e) present.add(e.record.sequence);

  let prev: StoredRecord | null = null;
  let anchoredAt: bigint | null = null;
  let low: StoredRecord | null = null;
  let high: StoredRecord | null = null;
  for (const e of entries) {
    if (!("record" in e)) {
      return fail("altered", `line ${e.position} is not a stored event: ${e.unreadable}`, e);
    }
    const r = e.record;
    const at = { sequence: r.sequence, eventId: r.id, position: e.position };
    if (r.tenantId !== manifest.tenantId) return fail("altered", `${named(r)} names tenant "${r.tenantId}"`, at);
    if (prev !== null) {
      // In chain order, the sequence this line should hold.
      const expected = asc ? prev.sequence + 1n : prev.sequence - 1n;
      const inOrder = asc ? r.sequence > prev.sequence : r.sequence < prev.sequence;
      if (!inOrder) {
        return fail("reordered", `${named(r)} is out of order: it comes after ${named(prev)} in an ${manifest.order} export`, at);
      }
      if (manifest.complete && r.sequence !== expected) {
        if (present.has(expected)) {
          return fail("reordered", `${named(r)} is out of order: sequence ${expected} should come first`, at);
        }
        return fail("missing", `the event at sequence ${expected} is missing (between ${named(prev)} and ${named(r)})`, {
          sequence: expected,
          position: e.position,
        });
      }
    }
    const problem = selfProblem(r);
    if (problem) return fail("altered", `${named(r)} is ${problem}`, at);
    if (manifest.complete && prev !== null) {
      const [lower, upper] = asc ? [prev, r] : [r, prev];
      if (upper.prevHash !== lower.hash) {
        return fail("altered", `${named(upper)} does not link to ${named(lower)}: its prev_hash is not that event's hash`, {
          sequence: upper.sequence,
          eventId: upper.id,
          position: e.position,
        });
      }
    }
    if (r.sequence === checkpoint.sequence) {
      if (r.hash !== checkpoint.hash)
        return fail("checkpoint", `${named(r)} has hash ${r.hash}, the signed checkpoint ${checkpoint.hash}`, at);
      anchoredAt = r.sequence;
    }
    if (low === null || r.sequence < low.sequence) low = r;
    if (high === null || r.sequence > high.sequence) high = r;
    prev = r;
  }

  const count = BigInt(entries.length);
  if (count !== manifest.count) return fail("missing", `the file holds ${count} events, the manifest says ${manifest.count}`);
  const ends: [string, string | bigint, string | bigint][] = [
    ["first sequence", low?.sequence ?? 0n, manifest.firstSequence],
    ["last sequence", high?.sequence ?? 0n, manifest.lastSequence],
    ["prev_hash of the first event", low?.prevHash ?? "", manifest.firstPrevHash],
    ["hash of the last event", high?.hash ?? "", manifest.lastHash],
  ];
  for (const [what, got, want] of ends) {
    if (got !== want) return fail("missing", `the ${what} is ${got || '""'}, the manifest says ${want || '""'}`);
  }
  if (input.contentSha256 !== manifest.sha256) {
    return fail("format", "the file's bytes differ from what the manifest signed (SHA-256 mismatch), outside any event's hashed fields");
  }
  if (anchoredAt === null && manifest.complete && count > 0n) {
    if (checkpoint.sequence === manifest.firstSequence - 1n) {
      if (manifest.firstPrevHash !== checkpoint.hash) {
        return fail("checkpoint", `the prev_hash of the first event differs from the signed checkpoint at sequence ${checkpoint.sequence}`);
      }
      anchoredAt = checkpoint.sequence;
    } else {
      return fail(
        "checkpoint",
        `the checkpoint (sequence ${checkpoint.sequence}) is outside the export (${manifest.firstSequence}..${manifest.lastSequence}): take one within it`,
      );
    }
  }
  return {
    ok: true,
    tenantId: manifest.tenantId,
    count,
    firstSequence: manifest.firstSequence,
    lastSequence: manifest.lastSequence,
    complete: manifest.complete,
    anchoredAt,
  };
}

/** A line of an NDJSON export (proto3 JSON of a StoredEvent) as the record it stores. */
export function recordFromNdjsonLine(line: string): StoredRecord {
  const s = fromJsonString(StoredEventSchema, line);
  if (!s.event || !s.receivedAt) throw new Error("no event or receivedAt");
  const r = recordFromEvent(s.event);
  return {
    ...r,
    tenantId: s.tenantId,
    receivedAt: microsFromTimestamp(s.receivedAt),
    sequence: s.sequence,
    contentHash: s.erased ? s.contentHash : "",
    hash: s.hash,
    prevHash: s.prevHash,
    ...(s.erased ? { erased: true } : {}),
    ...(s.salt ? { salt: s.salt } : {}),
  };
}

/** An NDJSON export with its manifest line as verifyStoredEvents' input. */
export function readNdjsonExport(bytes: Buffer): StoredEventsInput {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0a ? bytes.length - 1 : bytes.length;
  const lastStart = bytes.lastIndexOf(0x0a, end - 1) + 1;
  const lastLine = bytes.subarray(lastStart, end).toString("utf8");
  if (!isManifestLine(lastLine)) {
    throw new Error("the file's last line is not a manifest: export with manifest=true (GET /v1/export) or manifest: true (ExportEvents)");
  }
  const manifest = parseManifestLine(lastLine);
  const body = bytes.subarray(0, lastStart);
  const entries: EventEntry[] = [];
  const lines = body.toString("utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, i) => {
    const position = i + 1;
    try {
      entries.push({ position, record: recordFromNdjsonLine(line) });
    } catch (err) {
      const seq = /"sequence":"(\d{1,19})"/.exec(line)?.[1];
      entries.push({
        position,
        unreadable: (err as Error).message,
        sequence: seq ? BigInt(seq) : null,
        eventId: /"id":"([^"\\]*)"/.exec(line)?.[1] ?? "",
      });
    }
  });
  return { entries, manifest, contentSha256: createHash("sha256").update(body).digest("hex") };
}
