// The offline verifier on files built here from chained records: the export
// as the service writes it (ndjsonLineOfRecord + the manifest line), then
// changed the ways an attacker or an accident would.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checkpointDocument, checkpointPayload, parseCheckpointDocument, signCheckpoint } from "../../src/domain/checkpoint.ts";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { ManifestBuilder, manifestLine, parseManifestLine } from "../../src/domain/export-manifest.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { readNdjsonExport, verifyStoredEvents } from "../../src/domain/offline-verification.ts";
import { signingKeyFromPem, type SigningKey } from "../../src/domain/signing.ts";
import { chainRecords, fullEvent } from "./fixtures.ts";

const newKey = (): SigningKey =>
  signingKeyFromPem(generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString());
const key = newKey();
const records = chainRecords(Array.from({ length: 10 }, (_, i) => fullEvent({ id: `e${i + 1}`, message: `message ${i + 1}` })));
const NOW = 1_764_488_738_123_456n;

function exportOf(rs: StoredRecord[], opts: { order?: "asc" | "desc"; complete?: boolean; signer?: SigningKey } = {}): Buffer {
  const order = opts.order ?? "asc";
  const b = new ManifestBuilder({ tenantId: "tenant-a", order, complete: opts.complete ?? true });
  const lines = (order === "asc" ? rs : [...rs].reverse()).map((r) => {
    const text = ndjsonLineOfRecord(r);
    b.add(r, text);
    return text;
  });
  return Buffer.from(lines.join("") + manifestLine(b.sign(opts.signer ?? key, NOW)));
}

const checkpointAt = (seq: number, signer = key) =>
  signCheckpoint(signer, { tenantId: "tenant-a", sequence: BigInt(seq), hash: records[seq - 1]!.hash, createdAt: NOW });

const run = (file: Buffer, cp = checkpointAt(10)) => verifyStoredEvents(readNdjsonExport(file), cp, key.publicKey);

describe("checkpoint documents", () => {
  it("sign the canonical payload and parse back to the same checkpoint", () => {
    const cp = checkpointAt(4);
    expect(checkpointPayload(cp)).toBe(
      `{"created_at":"2025-11-30T07:45:38.123456Z","hash":"${cp.hash}","key_id":"${key.keyId}","sequence":"4","tenant_id":"tenant-a","type":"auditlog.checkpoint","v":1}`,
    );
    expect(parseCheckpointDocument(checkpointDocument(cp))).toEqual(cp);
  });

  it("manifest lines parse back to what was signed", () => {
    const file = exportOf(records).toString();
    const m = parseManifestLine(file.trimEnd().split("\n").at(-1)!);
    expect(m).toMatchObject({ count: 10n, firstSequence: 1n, lastSequence: 10n, lastHash: records[9]!.hash, keyId: key.keyId });
    expect(m.firstPrevHash).toBe("0".repeat(64));
  });
});

describe("verifyStoredEvents", () => {
  it("accepts untouched exports in either order, anchored anywhere in the range", () => {
    expect(run(exportOf(records))).toMatchObject({ ok: true, count: 10n, anchoredAt: 10n, complete: true });
    expect(run(exportOf(records, { order: "desc" }), checkpointAt(3))).toMatchObject({ ok: true, anchoredAt: 3n });
  });

  it("anchors a range that starts right after the checkpoint on its first prev_hash", () => {
    expect(run(exportOf(records.slice(4)), checkpointAt(4))).toMatchObject({ ok: true, anchoredAt: 4n });
  });

  it("refuses a complete export that does not reach the checkpoint", () => {
    const r = run(exportOf(records.slice(0, 5)), checkpointAt(8));
    expect(r).toMatchObject({ ok: false, failure: { kind: "checkpoint" } });
  });

  it("accepts a filtered export without its checkpoint's event, saying it is not anchored", () => {
    const some = [records[1]!, records[4]!, records[8]!];
    expect(run(exportOf(some, { complete: false }))).toMatchObject({ ok: true, complete: false, anchoredAt: null });
  });

  it("names an event whose field changed, in a filtered export too", () => {
    const changed = exportOf(records, { complete: false }).toString().replace("message 6", "massage 6");
    expect(run(Buffer.from(changed))).toMatchObject({ ok: false, failure: { kind: "altered", sequence: 6n, eventId: "e6", position: 6 } });
  });

  it("names an event whose line is no longer a stored event", () => {
    const broken = exportOf(records).toString().replace('"id":"e3"', '"id":"e3","extra":1');
    expect(run(Buffer.from(broken))).toMatchObject({ ok: false, failure: { kind: "altered", position: 3, eventId: "e3" } });
  });

  it("names a missing event (complete export) and counts one (filtered export)", () => {
    const lines = exportOf(records).toString().split("\n");
    lines.splice(6, 1);
    expect(run(Buffer.from(lines.join("\n")))).toMatchObject({ ok: false, failure: { kind: "missing", sequence: 7n } });
    const filtered = exportOf(records, { complete: false }).toString().split("\n");
    filtered.splice(6, 1);
    expect(run(Buffer.from(filtered.join("\n")))).toMatchObject({ ok: false, failure: { kind: "missing" } });
  });

  it("names a swapped pair in either order", () => {
    const asc = exportOf(records).toString().split("\n");
    [asc[3], asc[4]] = [asc[4]!, asc[3]!];
    expect(run(Buffer.from(asc.join("\n")))).toMatchObject({ ok: false, failure: { kind: "reordered", sequence: 5n, eventId: "e5" } });
    const desc = exportOf(records, { order: "desc" }).toString().split("\n");
    [desc[0], desc[1]] = [desc[1]!, desc[0]!];
    expect(run(Buffer.from(desc.join("\n")))).toMatchObject({ ok: false, failure: { kind: "reordered", sequence: 10n } });
  });

  it("refuses a file whose bytes outside the events changed", () => {
    const spaced = exportOf(records).toString().replace('{"event":', '{ "event":');
    expect(run(Buffer.from(spaced))).toMatchObject({ ok: false, failure: { kind: "format" } });
  });

  it("refuses a checkpoint or a manifest signed by another key", () => {
    const other = newKey();
    expect(run(exportOf(records), checkpointAt(10, other))).toMatchObject({ ok: false, failure: { kind: "checkpoint" } });
    expect(run(exportOf(records, { signer: other }))).toMatchObject({ ok: false, failure: { kind: "manifest" } });
  });

  it("refuses a checkpoint of another tenant and one whose hash differs", () => {
    const cp = checkpointAt(10);
    const otherTenant = signCheckpoint(key, { ...cp, tenantId: "tenant-b" });
    expect(run(exportOf(records), otherTenant)).toMatchObject({ ok: false, failure: { kind: "checkpoint" } });
    const otherHash = signCheckpoint(key, { ...cp, hash: records[0]!.hash });
    expect(run(exportOf(records), otherHash)).toMatchObject({ ok: false, failure: { kind: "checkpoint", sequence: 10n } });
  });

  it("refuses a file without a manifest line", () => {
    const lines = records.map(ndjsonLineOfRecord).join("");
    expect(() => readNdjsonExport(Buffer.from(lines))).toThrow(/not a manifest/);
  });
});
