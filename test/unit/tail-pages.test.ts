// TailPages: the catch-up reads shared by the streams of a replica.
import { describe, expect, it } from "vitest";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { TailPages } from "../../src/services/tail/tail-pages.ts";
import { chainRecords, minimalEvent } from "./fixtures.ts";

function setup(n: number, opts: { keep?: number; maxAgeMs?: number } = {}) {
  const committed = chainRecords(Array.from({ length: n }, (_, i) => minimalEvent({ id: `e${i + 1}` })));
  const reads: bigint[] = [];
  let clock = 0;
  let hold: Promise<void> | null = null;
  const source = {
    readAfter: async (_t: string, after: bigint, limit: number): Promise<StoredRecord[]> => {
      reads.push(after);
      if (hold) await hold;
      // Fresh objects per read, like rows decoded from PostgreSQL.
      return committed.slice(Number(after), Number(after) + limit).map((r) => ({ ...r }));
    },
  };
  const pages = new TailPages(source, 4, opts.keep ?? 20, opts.maxAgeMs ?? 5000, () => clock);
  return {
    pages,
    reads,
    tick: (ms: number) => (clock += ms),
    holdReads: () => {
      let release!: () => void;
      hold = new Promise((r) => (release = r));
      return () => {
        hold = null;
        release();
      };
    },
  };
}

const seqs = (rs: readonly StoredRecord[]) => rs.map((r) => Number(r.sequence));

describe("TailPages", () => {
  it("reads the page aligned on the tenant's sequences and returns what is after the position", async () => {
    const { pages, reads } = setup(10);
    const p = await pages.after("tenant-a", 5n);
    expect(seqs(p.records)).toEqual([6, 7, 8]);
    expect(p.full).toBe(true);
    expect(reads).toEqual([4n]);
    const last = await pages.after("tenant-a", 8n);
    expect(seqs(last.records)).toEqual([9, 10]);
    expect(last.full).toBe(false);
  });

  it("gives streams near each other the same record objects from one read", async () => {
    const { pages, reads } = setup(10);
    const [a, b] = await Promise.all([pages.after("tenant-a", 4n), pages.after("tenant-a", 6n)]);
    expect(reads).toEqual([4n]);
    expect(b.records[0]).toBe(a.records[2]);
    const c = await pages.after("tenant-a", 5n);
    expect(reads).toEqual([4n]);
    expect(c.records[0]).toBe(a.records[1]);
  });

  it("shares a read under way, even one not kept (the head's page)", async () => {
    const { pages, reads, holdReads } = setup(10);
    const release = holdReads();
    const a = pages.after("tenant-a", 8n);
    const b = pages.after("tenant-a", 9n);
    release();
    expect(seqs((await a).records)).toEqual([9, 10]);
    expect(seqs((await b).records)).toEqual([10]);
    expect(reads).toEqual([8n]);
    await pages.after("tenant-a", 8n);
    expect(reads).toEqual([8n, 8n]);
  });

  it("serves a kept page for a while only, and keeps a few", async () => {
    const { pages, reads, tick } = setup(20, { keep: 2, maxAgeMs: 1000 });
    await pages.after("tenant-a", 0n);
    tick(1001);
    await pages.after("tenant-a", 0n);
    expect(reads).toEqual([0n, 0n]);
    await pages.after("tenant-a", 4n);
    await pages.after("tenant-a", 8n);
    await pages.after("tenant-a", 0n);
    expect(reads).toEqual([0n, 0n, 4n, 8n, 0n]);
    await pages.after("tenant-a", 8n);
    expect(reads).toEqual([0n, 0n, 4n, 8n, 0n]);
  });

  it("keeps tenants apart and stops waiting when the caller's signal aborts", async () => {
    const { pages, reads } = setup(10);
    await pages.after("tenant-a", 0n);
    await pages.after("tenant-b", 0n);
    expect(reads).toEqual([0n, 0n]);
    const ac = new AbortController();
    ac.abort(new Error("gone"));
    await expect(pages.after("tenant-a", 0n, ac.signal)).rejects.toThrow("gone");
  });
});
