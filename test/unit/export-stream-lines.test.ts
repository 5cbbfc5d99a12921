// exportChunks takes a backend's own NDJSON lines (exportNdjson) for plain
// NDJSON as stored, and records everywhere else; the lines are passed on in
// chunks of about CHUNK_BYTES that end at a line's end.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { keyIdOf, type SigningKey } from "../../src/domain/signing.ts";
import type { SearchBackend } from "../../src/search/backend.ts";
import { asStored, type RecordView } from "../../src/services/data-protection.ts";
import { CHUNK_BYTES, type ExportPlan, exportChunks } from "../../src/services/export-stream.ts";
import { chainRecords, fullEvent } from "./fixtures.ts";

const records = chainRecords(Array.from({ length: 300 }, (_, i) => fullEvent({ id: `ev-${i}`, message: "x".repeat(i * 7) })));
const lines = records.map(ndjsonLineOfRecord);

/** A backend that serves `records` and, when `pages` is given, those pages as its NDJSON lines. */
function backend(pages?: string[][]): SearchBackend & { used: string[] } {
  const used: string[] = [];
  const b: SearchBackend & { used: string[] } = {
    name: "postgresql",
    used,
    search: () => Promise.reject(new Error("not used")),
    async *export() {
      used.push("records");
      yield records;
    },
    stats: () => Promise.reject(new Error("not used")),
    waitForPosition: () => Promise.resolve(true),
    indexStatus: () => Promise.reject(new Error("not used")),
  };
  if (pages) {
    b.exportNdjson = async function* () {
      used.push("lines");
      for (const p of pages) yield Buffer.from(p.join(""));
    };
  }
  return b;
}

const plan: ExportPlan = { tenantId: "tenant-a", q: { conditions: [] }, direction: "asc", limit: null, format: "ndjson" };

async function chunksOf(it: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(c);
  return out;
}

function signingKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

describe("exportChunks with a backend's own NDJSON lines", () => {
  it("passes the lines on, in chunks of about CHUNK_BYTES that end at a line's end", async () => {
    // Pages of uneven sizes, one of them empty.
    const pages = [lines.slice(0, 1), lines.slice(1, 120), [], lines.slice(120, 121), lines.slice(121)];
    const b = backend(pages);
    const chunks = await chunksOf(exportChunks(b, plan, new AbortController().signal));
    expect(b.used).toEqual(["lines"]);
    expect(Buffer.concat(chunks).toString()).toBe(lines.join(""));
    expect(chunks.length).toBeGreaterThan(2);
    for (const [i, c] of chunks.entries()) {
      expect(c[c.length - 1]).toBe(0x0a);
      if (i < chunks.length - 1) {
        expect(c.length).toBeGreaterThanOrEqual(CHUNK_BYTES);
        // Over CHUNK_BYTES by less than its last line.
        const lastLine = c.subarray(c.lastIndexOf(0x0a, c.length - 2) + 1);
        expect(c.length - lastLine.length).toBeLessThan(CHUNK_BYTES);
      }
    }
  });

  it("lets the backend reuse its buffers only for a caller done with each chunk on next(), and holds nothing of one", async () => {
    // Pages whose sizes leave a part of a chunk at the end of each.
    const pages = [lines.slice(0, 37), lines.slice(37, 90), lines.slice(90, 91), lines.slice(91, 230), lines.slice(230)];
    const asked: (boolean | undefined)[] = [];
    const reusing = backend();
    // One buffer for every page, written over with "X" as soon as the consumer asks for the next.
    reusing.exportNdjson = async function* (_t, _q, _d, _l, _s, opts) {
      asked.push(opts?.reuseBuffers);
      const shared = Buffer.alloc(Math.max(...pages.map((p) => Buffer.byteLength(p.join("")))));
      for (const p of pages) {
        const n = shared.write(p.join(""));
        yield shared.subarray(0, n);
        shared.fill("X");
      }
    };
    const copies: Buffer[] = [];
    // The caller's side of consumedOnNext: each chunk is used up before the next is asked for.
    for await (const c of exportChunks(reusing, plan, new AbortController().signal, null, asStored, { consumedOnNext: true })) {
      copies.push(Buffer.from(c));
    }
    expect(Buffer.concat(copies).toString()).toBe(lines.join(""));
    const keeping = backend([lines]);
    keeping.exportNdjson = async function* (_t, _q, _d, _l, _s, opts) {
      asked.push(opts?.reuseBuffers);
      yield* [];
    };
    await chunksOf(exportChunks(keeping, plan, new AbortController().signal));
    expect(asked).toEqual([true, false]);
  });

  it("gives the same bytes as the record path", async () => {
    const fromLines = await chunksOf(exportChunks(backend([lines]), plan, new AbortController().signal));
    const fromRecords = await chunksOf(exportChunks(backend(), plan, new AbortController().signal));
    expect(Buffer.concat(fromLines)).toEqual(Buffer.concat(fromRecords));
  });

  it("keeps the record path for CSV, a signed manifest and a caller who sees decrypted content", async () => {
    const signal = new AbortController().signal;
    const csv = backend([lines]);
    await chunksOf(exportChunks(csv, { ...plan, format: "csv" }, signal));
    expect(csv.used).toEqual(["records"]);
    const manifest = backend([lines]);
    const withManifest = Buffer.concat(await chunksOf(exportChunks(manifest, { ...plan, manifest: true }, signal, signingKey())));
    expect(manifest.used).toEqual(["records"]);
    expect(withManifest.toString().startsWith(lines.join(""))).toBe(true);
    const decrypting = backend([lines]);
    const view: RecordView = async (rs) => rs;
    await chunksOf(exportChunks(decrypting, plan, signal, null, view));
    expect(decrypting.used).toEqual(["records"]);
    const stored = backend([lines]);
    await chunksOf(exportChunks(stored, plan, signal, null, asStored));
    expect(stored.used).toEqual(["lines"]);
  });

  it("takes the record path when the backend has no lines for the query (exportNdjson answers null)", async () => {
    const declining = backend();
    declining.exportNdjson = () => null;
    const file = await chunksOf(exportChunks(declining, plan, new AbortController().signal));
    expect(declining.used).toEqual(["records"]);
    expect(Buffer.concat(file)).toEqual(Buffer.concat(await chunksOf(exportChunks(backend(), plan, new AbortController().signal))));
    expect(file.length).toBeGreaterThan(0);
  });
});
