// Offline verification of a folder of archive windows: objects and manifests
// made here as the retention job makes them (encodeArchive), then changed the
// ways an attacker or an accident would, and an export of the live rows that
// continues them.
import { generateKeyPairSync } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  type ArchiveFolderInput,
  type ArchiveObjectFile,
  type ManifestFile,
  verifyArchiveFolder,
} from "../../src/domain/archive-folder-verification.ts";
import { type SignedCheckpoint, signCheckpoint } from "../../src/domain/checkpoint.ts";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { ManifestBuilder, manifestLine } from "../../src/domain/export-manifest.ts";
import { readNdjsonExport } from "../../src/domain/offline-verification.ts";
import { archiveManifestJson } from "../../src/domain/retention.ts";
import { type SigningKey, signingKeyFromPem } from "../../src/domain/signing.ts";
import { encodeArchive } from "../../src/lifecycle/archive-object.ts";
import { chainRecords, fullEvent } from "./fixtures.ts";

const newKey = (): SigningKey =>
  signingKeyFromPem(generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString());
const key = newKey();
const NOW = new Date(Date.UTC(2026, 10, 30, 12));
const records = chainRecords(Array.from({ length: 12 }, (_, i) => fullEvent({ id: `e${i + 1}`, message: `message ${i + 1}` })));
const hashAt = (seq: number) => records[seq - 1]!.hash;

type Folder = { manifests: Map<string, string>; objects: Map<string, Uint8Array> };

/** Windows [first, last] (1-based sequences) as the retention job writes them, keyed like the bucket. */
function folder(windows: [number, number][], opts: { signer?: SigningKey | null; tenantId?: string; rs?: StoredRecord[] } = {}): Folder {
  const f: Folder = { manifests: new Map(), objects: new Map() };
  for (const [first, last] of windows) {
    const key_ = `t/2026-11/${String(first).padStart(4, "0")}-${String(last).padStart(4, "0")}.ndjson.gz`;
    const { body, manifest } = encodeArchive(
      key_,
      (opts.rs ?? records).slice(first - 1, last),
      opts.signer === null ? undefined : (opts.signer ?? key),
      NOW,
    );
    f.objects.set(key_, body);
    f.manifests.set(`${key_}.manifest.json`, archiveManifestJson(manifest));
  }
  return f;
}

const standard = () =>
  folder([
    [1, 3],
    [4, 6],
    [7, 9],
  ]);

function inputOf(f: Folder, extra: Partial<ArchiveFolderInput> = {}): ArchiveFolderInput {
  const manifests: ManifestFile[] = [...f.manifests].map(([name, text]) => ({ name, text }));
  const readObject = (name: string): ArchiveObjectFile | null => {
    const stored = f.objects.get(name.replace(/\.manifest\.json$/, ""));
    if (!stored) return null;
    try {
      return { stored, ndjson: gunzipSync(stored) };
    } catch (err) {
      return { stored, unreadable: (err as Error).message };
    }
  };
  const strayObjects = [...f.objects.keys()].filter((k) => !f.manifests.has(`${k}.manifest.json`));
  return { manifests, strayObjects, readObject, ...extra };
}

const checkpointAt = (seq: number, signer = key, hash = hashAt(seq)): SignedCheckpoint =>
  signCheckpoint(signer, { tenantId: "tenant-a", sequence: BigInt(seq), hash, createdAt: 1_764_488_738_123_456n });

/** An export of records [first, last], complete and ascending unless told. */
function exportOf(first: number, last: number, opts: { complete?: boolean } = {}) {
  const b = new ManifestBuilder({ tenantId: "tenant-a", order: "asc", complete: opts.complete ?? true });
  let text = "";
  for (const r of records.slice(first - 1, last)) {
    const line = ndjsonLineOfRecord(r);
    b.add(r, line);
    text += line;
  }
  return readNdjsonExport(Buffer.from(text + manifestLine(b.sign(key, 1_764_488_738_123_456n))));
}

const run = (f: Folder, cp = checkpointAt(9), extra: Partial<ArchiveFolderInput> = {}, keys = [key.publicKey]) =>
  verifyArchiveFolder(inputOf(f, extra), cp, keys);

/** The object's NDJSON lines (manifest line last), changed by `edit`, gzipped again. */
function rewrite(f: Folder, objectKey: string, edit: (lines: string[]) => string[]): void {
  const lines = gunzipSync(f.objects.get(objectKey)!).toString("utf8").split("\n").filter(Boolean);
  f.objects.set(objectKey, gzipSync(Buffer.from(`${edit(lines).join("\n")}\n`)));
}
const W2 = "t/2026-11/0004-0006.ndjson.gz";
const W3 = "t/2026-11/0007-0009.ndjson.gz";

describe("verifyArchiveFolder: untouched", () => {
  it("accepts windows from sequence 1 reaching the checkpoint, in any file order", () => {
    const f = standard();
    const reversed = inputOf(f);
    reversed.manifests = [...reversed.manifests].reverse();
    for (const r of [run(f), verifyArchiveFolder(reversed, checkpointAt(9), [key.publicKey])]) {
      expect(r).toMatchObject({
        ok: true,
        tenantId: "tenant-a",
        windows: 3,
        archivedTo: 9n,
        archivedEvents: 9n,
        anchoredAt: 9n,
        live: null,
      });
    }
    expect(run(f, checkpointAt(5))).toMatchObject({ ok: true, anchoredAt: 5n });
  });

  it("accepts an export of the live rows that continues the windows or overlaps them", () => {
    expect(run(standard(), checkpointAt(12), { live: exportOf(10, 12) })).toMatchObject({
      ok: true,
      archivedTo: 9n,
      live: { firstSequence: 10n, lastSequence: 12n, count: 3n },
    });
    expect(run(standard(), checkpointAt(12), { live: exportOf(5, 12) })).toMatchObject({ ok: true });
  });

  it("starts after a given anchor, leaving aside the windows before it and checking one that spans it", () => {
    const anchor = { sequence: 3n, hash: hashAt(3) };
    expect(run(standard(), checkpointAt(9), { from: anchor })).toMatchObject({ ok: true, windows: 2, beforeFrom: 1, archivedEvents: 6n });
    expect(
      run(
        folder([
          [4, 6],
          [7, 9],
        ]),
        checkpointAt(9),
        { from: anchor },
      ),
    ).toMatchObject({ ok: true });
    expect(run(standard(), checkpointAt(9), { from: { sequence: 5n, hash: hashAt(5) } })).toMatchObject({
      ok: true,
      windows: 2,
      archivedEvents: 4n,
    });
    expect(run(standard(), checkpointAt(9), { from: { sequence: 5n, hash: "e".repeat(64) } })).toMatchObject({
      ok: false,
      failure: { kind: "altered", sequence: 5n, object: W2 },
    });
    expect(
      run(
        folder([
          [4, 6],
          [7, 9],
        ]),
        checkpointAt(9),
        { from: { sequence: 3n, hash: "e".repeat(64) } },
      ),
    ).toMatchObject({
      ok: false,
      failure: { kind: "altered", sequence: 4n },
    });
  });

  it("with an anchor, takes an export that starts at it or before it", () => {
    expect(run(standard(), checkpointAt(12), { from: { sequence: 9n, hash: hashAt(9) }, live: exportOf(10, 12) })).toMatchObject({
      ok: true,
      windows: 0,
      beforeFrom: 3,
    });
    expect(run(standard(), checkpointAt(12), { from: { sequence: 3n, hash: hashAt(3) }, live: exportOf(1, 12) })).toMatchObject({
      ok: true,
      windows: 2,
    });
    expect(run(standard(), checkpointAt(12), { from: { sequence: 9n, hash: "e".repeat(64) }, live: exportOf(10, 12) })).toMatchObject({
      ok: false,
      failure: { kind: "altered", sequence: 10n, object: "the export" },
    });
  });

  it("leaves aside other tenants' manifests and lists objects without one", () => {
    const f = standard();
    const other = folder([[1, 2]], { rs: chainRecords([fullEvent({ id: "x1" }), fullEvent({ id: "x2" })], { tenantId: "tenant-b" }) });
    for (const [k, v] of other.manifests) f.manifests.set(k.replace("t/", "b/"), v);
    f.objects.set("t/stray.ndjson.gz", new Uint8Array([1]));
    expect(run(f)).toMatchObject({ ok: true, otherTenants: 1, strayObjects: ["t/stray.ndjson.gz"] });
  });

  it("accepts objects signed before a key rotation when the older key is given too", () => {
    const old = newKey();
    const f = folder([[1, 3]], { signer: old });
    for (const [k, v] of folder([
      [4, 6],
      [7, 9],
    ]).manifests)
      f.manifests.set(k, v);
    for (const [k, v] of folder([
      [4, 6],
      [7, 9],
    ]).objects)
      f.objects.set(k, v);
    expect(run(f)).toMatchObject({ ok: false, failure: { kind: "manifest", object: "t/2026-11/0001-0003.ndjson.gz" } });
    expect(run(f, checkpointAt(9), {}, [key.publicKey, old.publicKey])).toMatchObject({ ok: true });
  });
});

describe("verifyArchiveFolder: names the first altered, missing or reordered event, object or window", () => {
  it("an event whose content changed, by sequence and id", () => {
    const f = standard();
    rewrite(f, W2, (ls) => ls.map((l) => l.replace("message 5", "message 6")));
    expect(run(f)).toMatchObject({ ok: false, failure: { kind: "altered", sequence: 5n, eventId: "e5", position: 2, object: W2 } });
  });

  it("a line that is no longer a stored event", () => {
    const f = standard();
    rewrite(f, W2, (ls) => ls.map((l, i) => (i === 1 ? l.slice(1) : l)));
    expect(run(f)).toMatchObject({ ok: false, failure: { kind: "altered", sequence: 5n, position: 2, object: W2 } });
  });

  it("a removed event, a swapped pair and a truncated window", () => {
    const removed = standard();
    rewrite(removed, W2, (ls) => ls.filter((_, i) => i !== 1));
    expect(run(removed)).toMatchObject({ ok: false, failure: { kind: "missing", sequence: 5n, object: W2 } });
    const swapped = standard();
    rewrite(swapped, W2, (ls) => [ls[1]!, ls[0]!, ...ls.slice(2)]);
    expect(run(swapped)).toMatchObject({ ok: false, failure: { kind: "reordered", sequence: 5n, object: W2 } });
    const truncated = standard();
    rewrite(truncated, W2, (ls) => [...ls.slice(0, 2), ls.at(-1)!]);
    expect(run(truncated)).toMatchObject({ ok: false, failure: { kind: "missing", sequence: 6n, object: W2 } });
  });

  it("an object whose bytes changed: not gzip any more, or outside the events", () => {
    const corrupt = standard();
    const body = Buffer.from(corrupt.objects.get(W2)!);
    body[body.length - 5] ^= 0xff; // the gzip trailer's CRC
    corrupt.objects.set(W2, body);
    expect(run(corrupt)).toMatchObject({ ok: false, failure: { kind: "altered", sequence: 4n, object: W2 } });
    const header = standard();
    const h = Buffer.from(header.objects.get(W2)!);
    h[4] ^= 0x01; // the gzip header's modification time: the events are intact, the SHA-256 is not
    header.objects.set(W2, h);
    const r = run(header);
    expect(r).toMatchObject({ ok: false, failure: { kind: "altered", sequence: 4n, object: W2 } });
    expect(!r.ok && r.failure.reason).toContain("SHA-256");
  });

  it("a removed object, a removed window and a removed first window", () => {
    const object = standard();
    object.objects.delete(W2);
    expect(run(object)).toMatchObject({ ok: false, failure: { kind: "missing", sequence: 4n, object: W2 } });
    const window = standard();
    window.objects.delete(W2);
    window.manifests.delete(`${W2}.manifest.json`);
    const r = run(window);
    expect(r).toMatchObject({ ok: false, failure: { kind: "missing", sequence: 4n } });
    expect(!r.ok && r.failure.reason).toContain("sequences 4..6 missing");
    const manifestOnly = standard();
    manifestOnly.manifests.delete(`${W2}.manifest.json`);
    expect(!run(manifestOnly).ok && (run(manifestOnly) as { failure: { reason: string } }).failure.reason).toContain(W2);
    const first = standard();
    first.manifests.delete("t/2026-11/0001-0003.ndjson.gz.manifest.json");
    expect(run(first)).toMatchObject({ ok: false, failure: { kind: "missing", sequence: 1n } });
  });

  it("two objects swapped, overlapping windows and a broken link between windows", () => {
    const swapped = standard();
    const [a, b] = [swapped.objects.get(W2)!, swapped.objects.get(W3)!];
    swapped.objects.set(W2, b);
    swapped.objects.set(W3, a);
    expect(run(swapped)).toMatchObject({ ok: false, failure: { kind: "reordered", sequence: 4n, object: W2 } });
    const overlap = folder([
      [1, 3],
      [3, 6],
      [7, 9],
    ]);
    expect(run(overlap)).toMatchObject({ ok: false, failure: { kind: "reordered", sequence: 3n } });
    const link = standard();
    const m = JSON.parse(link.manifests.get(`${W3}.manifest.json`)!);
    link.manifests.set(`${W3}.manifest.json`, JSON.stringify({ ...m, first_prev_hash: "e".repeat(64) }));
    expect(run(link)).toMatchObject({ ok: false, failure: { kind: "altered", sequence: 7n, object: `${W3}.manifest.json` } });
  });

  it("a manifest beside its object that names another digest, and one that is not a manifest", () => {
    const digest = standard();
    const m = JSON.parse(digest.manifests.get(`${W2}.manifest.json`)!);
    digest.manifests.set(`${W2}.manifest.json`, JSON.stringify({ ...m, sha256: "0".repeat(64) }));
    expect(run(digest)).toMatchObject({ ok: false, failure: { kind: "altered", object: W2 } });
    const content = standard();
    content.manifests.set(`${W2}.manifest.json`, JSON.stringify({ ...m, content_sha256: "0".repeat(64) }));
    expect(run(content)).toMatchObject({ ok: false, failure: { kind: "manifest", object: W2 } });
    const garbage = standard();
    garbage.manifests.set(`${W2}.manifest.json`, "{}");
    expect(run(garbage)).toMatchObject({ ok: false, failure: { kind: "format", object: `${W2}.manifest.json` } });
  });

  it("an object without a signed manifest, or with one that does not match its content", () => {
    expect(run(folder([[1, 9]], { signer: null }))).toMatchObject({ ok: false, failure: { kind: "manifest", sequence: 1n } });
    const forged = standard();
    rewrite(forged, W2, (ls) => [...ls.slice(0, -1), ls.at(-1)!.replace('"count":"3"', '"count":"4"')]);
    expect(run(forged)).toMatchObject({ ok: false, failure: { kind: "manifest", object: W2 } });
  });
});

describe("verifyArchiveFolder: the checkpoint and the export", () => {
  it("refuses a checkpoint signed by another key, one with another hash, and one beyond the windows without an export", () => {
    expect(run(standard(), checkpointAt(9, newKey()))).toMatchObject({ ok: false, failure: { kind: "checkpoint" } });
    expect(run(standard(), checkpointAt(6, key, "e".repeat(64)))).toMatchObject({
      ok: false,
      failure: { kind: "checkpoint", sequence: 6n, object: W2 },
    });
    const beyond = run(standard(), checkpointAt(12));
    expect(beyond).toMatchObject({ ok: false, failure: { kind: "checkpoint" } });
    expect(!beyond.ok && beyond.failure.reason).toContain("--export");
    expect(run(standard(), checkpointAt(2), { from: { sequence: 3n, hash: hashAt(3) } })).toMatchObject({
      ok: false,
      failure: { kind: "checkpoint" },
    });
  });

  it("refuses an export that leaves a gap, is filtered, is altered, or does not reach the checkpoint", () => {
    expect(run(standard(), checkpointAt(12), { live: exportOf(11, 12) })).toMatchObject({
      ok: false,
      failure: { kind: "missing", sequence: 10n },
    });
    expect(run(standard(), checkpointAt(12), { live: exportOf(10, 12, { complete: false }) })).toMatchObject({
      ok: false,
      failure: { kind: "format", object: "the export" },
    });
    const live = exportOf(10, 12);
    const altered = {
      ...live,
      entries: live.entries.map((e) => ("record" in e && e.record.sequence === 11n ? { ...e, record: { ...e.record, action: "x" } } : e)),
    };
    expect(run(standard(), checkpointAt(12), { live: altered })).toMatchObject({
      ok: false,
      failure: { kind: "altered", sequence: 11n, object: "the export" },
    });
    // At the junction the checkpoint is where the export starts from; before it, the export cannot reach it.
    expect(run(standard(), checkpointAt(9), { live: exportOf(10, 12) })).toMatchObject({ ok: true });
    expect(run(standard(), checkpointAt(8), { live: exportOf(10, 12) })).toMatchObject({ ok: false, failure: { kind: "checkpoint" } });
  });

  it("refuses archived events that differ from the export where they overlap, and an export that does not link up", () => {
    const other = chainRecords(Array.from({ length: 12 }, (_, i) => fullEvent({ id: `e${i + 1}`, message: `other ${i + 1}` })));
    const forked = folder([[1, 3]]);
    for (const [k, v] of folder([[4, 9]], { rs: other }).manifests) forked.manifests.set(k, v);
    for (const [k, v] of folder([[4, 9]], { rs: other }).objects) forked.objects.set(k, v);
    // The second window is a chain of its own: its link to the first is broken.
    expect(run(forked, checkpointAt(12), { live: exportOf(5, 12) })).toMatchObject({
      ok: false,
      failure: { kind: "altered", sequence: 4n },
    });
    expect(run(folder([[1, 3]]), checkpointAt(12), { live: exportOf(4, 12) })).toMatchObject({ ok: true });
  });

  it("refuses a folder with nothing of the tenant", () => {
    const r = run({ manifests: new Map(), objects: new Map([["t/x.ndjson.gz", new Uint8Array([1])]]) });
    expect(r).toMatchObject({ ok: false, failure: { kind: "missing" } });
    expect(!r.ok && r.failure.reason).toContain("t/x.ndjson.gz");
  });
});
