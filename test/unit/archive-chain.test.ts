// The archived part of a chain: a series of archive manifests must link from
// sequence 1 to the chain anchor, and each object's events must verify
// between its manifest's ends.
import { describe, expect, it } from "vitest";
import { type ArchiveLink, archiveLinkFromJson, archiveObjectVerdict, archiveSeriesBreak } from "../../src/domain/archive-chain.ts";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { recordFromNdjsonLine } from "../../src/domain/offline-verification.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { archiveManifestJson } from "../../src/domain/retention.ts";
import { chainRecords, fullEvent } from "./fixtures.ts";

const records = chainRecords(
  Array.from({ length: 9 }, (_, i) => fullEvent({ id: `0190a1b2-c3d4-7e5f-8a9b-${String(i).padStart(12, "0")}` })),
);
// As an archive holds them: read back from their NDJSON lines (no content hash).
const archived = records.map((r) => recordFromNdjsonLine(ndjsonLineOfRecord(r)));

function link(from: number, to: number): ArchiveLink {
  const first = records[from - 1]!;
  const last = records[to - 1]!;
  return {
    objectKey: `t/${from}-${to}`,
    count: BigInt(to - from + 1),
    firstSequence: first.sequence,
    lastSequence: last.sequence,
    firstPrevHash: first.prevHash,
    lastHash: last.hash,
    sha256: "d".repeat(64),
  };
}
const series = [link(1, 3), link(4, 6), link(7, 9)];
const anchor = { sequence: 9n, hash: records[8]!.hash };
const slice = (from: number, to: number): StoredRecord[] => archived.slice(from - 1, to);

describe("archiveSeriesBreak", () => {
  it("accepts a series from sequence 1 to the anchor", () => {
    expect(archiveSeriesBreak(series, anchor, 9n)).toBeNull();
    expect(archiveSeriesBreak(series.slice(0, 2), anchor, 5n)).toBeNull();
  });

  it("names the first missing sequence of a gap, at the start, in the middle and at the end", () => {
    expect(archiveSeriesBreak(series.slice(1), anchor, 9n)).toMatchObject({ sequence: 1n });
    expect(archiveSeriesBreak([series[0]!, series[2]!], anchor, 9n)).toMatchObject({ sequence: 4n });
    expect(archiveSeriesBreak(series.slice(0, 2), anchor, 9n)!.reason).toContain("sequence 7 is missing");
  });

  it("refuses overlapping objects and a broken link between manifests", () => {
    expect(archiveSeriesBreak([series[0]!, link(3, 6), series[2]!], anchor, 9n)).toMatchObject({ sequence: 3n });
    const wrongEnd = { ...series[1]!, lastHash: "f".repeat(64) };
    expect(archiveSeriesBreak([series[0]!, wrongEnd, series[2]!], anchor, 9n)).toMatchObject({
      sequence: 7n,
      storedHash: records[5]!.hash,
    });
  });

  it("refuses a last manifest that does not end at the anchor's hash", () => {
    expect(archiveSeriesBreak(series, { sequence: 9n, hash: "e".repeat(64) }, 9n)).toMatchObject({ sequence: 9n });
  });
});

describe("archiveObjectVerdict", () => {
  const m = series[1]!;
  it("accepts an object's events and counts those up to upTo", () => {
    expect(archiveObjectVerdict(m, m.sha256, slice(4, 6), anchor, 9n)).toEqual({ broken: null, checked: 3n, lastHash: records[5]!.hash });
    expect(archiveObjectVerdict(m, m.sha256, slice(4, 6), anchor, 5n)).toMatchObject({
      broken: null,
      checked: 2n,
      lastHash: records[4]!.hash,
    });
  });

  it("names an altered, a missing and a reordered event", () => {
    const altered = slice(4, 6).map((r) => (r.sequence === 5n ? { ...r, action: `${r.action}x` } : r));
    expect(archiveObjectVerdict(m, m.sha256, altered, anchor, 9n).broken).toMatchObject({ sequence: 5n, eventId: records[4]!.id });
    expect(archiveObjectVerdict(m, m.sha256, [archived[3]!, archived[5]!], anchor, 9n).broken).toMatchObject({ sequence: 5n });
    expect(archiveObjectVerdict(m, m.sha256, [archived[4]!, archived[3]!, archived[5]!], anchor, 9n).broken).toMatchObject({
      sequence: 4n,
    });
    expect(archiveObjectVerdict(m, m.sha256, slice(4, 5), anchor, 9n).broken).toMatchObject({ sequence: 6n });
  });

  it("refuses an unreadable object, other bytes than the manifest's and an event at the anchor with another hash", () => {
    expect(archiveObjectVerdict(m, m.sha256, { unreadable: "incorrect header check" }, anchor, 9n).broken).toMatchObject({ sequence: 4n });
    expect(archiveObjectVerdict(m, "0".repeat(64), slice(4, 6), anchor, 9n).broken!.reason).toContain("SHA-256");
    expect(archiveObjectVerdict(m, m.sha256, slice(4, 6), { sequence: 5n, hash: "e".repeat(64) }, 5n).broken).toMatchObject({
      sequence: 5n,
    });
  });
});

describe("archiveLinkFromJson", () => {
  it("reads what the retention job writes and refuses anything else", () => {
    const r = records[0]!;
    const json = archiveManifestJson({
      ...series[0]!,
      tenantId: "tenant-a",
      firstReceivedAt: r.receivedAt,
      lastReceivedAt: r.receivedAt,
      contentSha256: "c".repeat(64),
      erased: [],
      createdAt: r.receivedAt,
    });
    expect(archiveLinkFromJson(json)).toEqual(series[0]);
    expect(() => archiveLinkFromJson(JSON.stringify({ type: "auditlog.export-manifest" }))).toThrow("not an");
    expect(() => archiveLinkFromJson(json.replace('"count":"3"', '"count":"x"'))).toThrow("count");
  });
});
