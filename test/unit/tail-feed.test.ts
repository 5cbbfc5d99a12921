// TailFeed's reads and hand-over to subscribers, over an in-memory list of
// committed records whose reads can be held.
import { describe, expect, it } from "vitest";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import type { TailSubscriber } from "../../src/domain/tail-subscribers.ts";
import { createLogger } from "../../src/platform/log.ts";
import { TailFeed } from "../../src/services/tail/tail-feed.ts";
import { chainRecords, minimalEvent } from "./fixtures.ts";

const drain = (s: TailSubscriber): number[] => {
  const out: number[] = [];
  for (let r = s.next(); r; r = s.next()) out.push(Number(r.sequence));
  return out;
};

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

describe("TailFeed", () => {
  it("reads again for a subscriber that joined behind a read under way: no gap", async () => {
    const committed = chainRecords(Array.from({ length: 8 }, (_, i) => minimalEvent({ id: `e${i + 1}` })));
    const reads: bigint[] = [];
    let release: (() => void) | null = null;
    const reader = {
      readAfter: async (_t: string, after: bigint, limit: number): Promise<StoredRecord[]> => {
        reads.push(after);
        if (after === 4n) await new Promise<void>((r) => (release = r));
        return committed.slice(Number(after), Number(after) + limit);
      },
    };
    const feed = new TailFeed(reader, createLogger({ level: "error" }), { batchSize: 10, bufferLimit: 100, pollMs: 60_000 });
    try {
      const ahead = await feed.subscribe("tenant-a", 4n, () => true);
      await until(() => release !== null);
      // Joins at 2 while the read after 4 is under way (its catch-up ended before the feed moved on).
      const late = await feed.subscribe("tenant-a", 2n, () => true);
      release!();
      await until(() => late.position === 8n);
      expect(drain(late)).toEqual([3, 4, 5, 6, 7, 8]);
      expect(drain(ahead)).toEqual([5, 6, 7, 8]);
      expect(reads).toEqual([4n, 2n]);
    } finally {
      feed.close();
    }
  });
});
