// The writer's two ways of inserting a batch: literal values in the commit's
// round trip (up to INLINE_MAX_EVENTS new events) and COPY (larger batches).
// Both must store the same rows, byte for byte, whatever the strings hold,
// and both must fall back to the stored ids when a retry is among the events.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventRecord } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../src/store/event-rows.ts";
import { INLINE_MAX_EVENTS, type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { systemQuery } from "../../src/store/system-scope.ts";
import { migratedDatabase } from "../support/db.ts";

// Strings that an SQL literal or COPY's text format must carry unchanged.
const AWKWARD = ["it's", "back\\slash", "\\'; DROP TABLE events; --", "tab\tnew\nline\rcr", "E'x'", "ünï ✓ 🎉", "$1 $$ $tag$", ""];

function record(i: number): EventRecord {
  const s = AWKWARD[i % AWKWARD.length]!;
  return {
    id: `ev-${i}-${s}`,
    occurredAt: BigInt(Date.UTC(2026, 0, 1) + i * 1000) * 1000n,
    action: "customer.updated",
    actor: { id: `u-${s}`, type: "USER", name: s, ip: "10.0.0.1", userAgent: s, sessionId: "" },
    target: { type: "customer", id: `c-${i}`, name: s },
    outcome: "SUCCESS",
    severity: "INFO",
    context: { requestId: s, traceId: "", source: "test", location: s },
    changes: { before: { name: s }, after: { name: `${s}!` } },
    metadata: { i, note: s, nested: { list: [s, 1, true, null] } },
    message: `event ${i}: ${s}`,
  } as EventRecord;
}

const item = (tenantId: string, r: EventRecord, digest?: string): WriteItem => {
  const sealed = sealContent(r);
  return { tenantId, record: r, ...sealed, digest: digest ?? sealed.digest };
};

describe("event writer: literal values and COPY", () => {
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  const n = INLINE_MAX_EVENTS + 1;
  const records = Array.from({ length: n }, (_, i) => record(i));

  const stored = async (tenantId: string) =>
    (await systemQuery<EventRow>(pool, `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 ORDER BY sequence`, [tenantId])).rows.map(
      (r) => {
        const { tenantId: _t, hash: _h, prevHash: _p, salt: _s, contentHash: _c, receivedAt: _r, ...rest } = recordFromRow(r);
        return rest;
      },
    );

  beforeAll(async () => {
    ({ db, pool } = await migratedDatabase(["by-copy", "inline", "retry"].map((t) => [t, t] as const)));
  });

  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it("stores the same rows from literal values as from COPY", async () => {
    // One batch one event over the inline limit goes by COPY; the same events
    // in batches at the limit and below go as literal values.
    const copied = await writeBatch(
      pool,
      records.map((r) => item("by-copy", r)),
    );
    const inline = [
      ...(await writeBatch(
        pool,
        records.slice(0, INLINE_MAX_EVENTS).map((r) => item("inline", r)),
      )),
      ...(await writeBatch(
        pool,
        records.slice(INLINE_MAX_EVENTS).map((r) => item("inline", r)),
      )),
    ];
    expect(copied.map((r) => r.status)).toEqual(Array(n).fill("accepted"));
    expect(inline).toEqual(copied);
    const rows = await stored("inline");
    expect(rows).toEqual(await stored("by-copy"));
    expect(rows.map((r) => r.id)).toEqual(records.map((r) => r.id));
    expect(rows.map((r) => r.metadata)).toEqual(records.map((r) => r.metadata));
    expect(rows.map((r) => r.actor.name)).toEqual(records.map((r) => r.actor.name));
  });

  it.each([
    ["literal values", 3],
    ["COPY", INLINE_MAX_EVENTS + 5],
    ["COPY, a few hundred events", 250],
  ])("replans a batch with retries among its events (%s): duplicates, conflicts and new events, in order", async (_, size) => {
    const base = size * 10;
    const first = Array.from({ length: size }, (_, i) => record(base + i));
    await writeBatch(
      pool,
      first.slice(0, 2).map((r) => item("retry", r)),
    );
    const before = (await stored("retry")).length;
    const results = await writeBatch(pool, [
      item("retry", first[0]!),
      item("retry", first[1]!, "other content"),
      ...first.slice(2).map((r) => item("retry", r)),
    ]);
    expect(results.map((r) => r.status)).toEqual(["duplicate", "conflict", ...Array(size - 2).fill("accepted")]);
    expect(results.slice(2).map((r) => r.sequence)).toEqual(Array.from({ length: size - 2 }, (_, i) => BigInt(before + 1 + i)));
    expect((await stored("retry")).map((r) => r.id).slice(-size)).toEqual(first.map((r) => r.id));
    // Each event links to the one before it.
    const links = (
      await systemQuery<{ sequence: string; hash: string; prev_hash: string }>(
        pool,
        "SELECT sequence, hash, prev_hash FROM events WHERE tenant_id = 'retry' ORDER BY sequence",
      )
    ).rows;
    for (let i = 1; i < links.length; i++) {
      expect(BigInt(links[i]!.sequence)).toBe(BigInt(links[i - 1]!.sequence) + 1n);
      expect(links[i]!.prev_hash).toBe(links[i - 1]!.hash);
    }
  });
});
