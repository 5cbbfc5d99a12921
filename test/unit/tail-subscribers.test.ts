import { describe, expect, it } from "vitest";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import { TailOverflowError, TailRegistry, TailSubscriber } from "../../src/domain/tail-subscribers.ts";
import { chainRecords, minimalEvent } from "./fixtures.ts";

const records = (n: number, tenantId = "tenant-a") =>
  chainRecords(
    Array.from({ length: n }, (_, i) => minimalEvent({ id: `e${i + 1}`, action: i % 2 ? "odd.thing" : "even.thing" })),
    { tenantId },
  );
const all = () => true;
const drain = (s: TailSubscriber): bigint[] => {
  const out: bigint[] = [];
  for (let r = s.next(); r; r = s.next()) out.push(r.sequence);
  return out;
};

describe("TailSubscriber", () => {
  it("queues the matching events after its position, in order, and advances past the others", () => {
    const s = new TailSubscriber("tenant-a", 2n, (r: StoredRecord) => r.action === "even.thing", 100);
    for (const r of records(8)) s.offer(r);
    expect(drain(s)).toEqual([3n, 5n, 7n]);
    expect(s.position).toBe(8n);
    expect(s.idlePosition()).toBe(8n);
  });

  it("offers no heartbeat position while events wait", () => {
    const s = new TailSubscriber("tenant-a", 0n, all, 10);
    s.offer(records(1)[0]!);
    expect(s.idlePosition()).toBeNull();
    s.next();
    expect(s.idlePosition()).toBe(1n);
  });

  it("fails past its buffer with the position of what it was handed, and drops its queue", () => {
    const s = new TailSubscriber("tenant-a", 0n, all, 3);
    const rs = records(6);
    s.offer(rs[0]!);
    s.offer(rs[1]!);
    expect(s.next()?.sequence).toBe(1n);
    for (const r of rs.slice(2)) s.offer(r);
    expect(s.failure).toBeInstanceOf(TailOverflowError);
    expect(s.failure!.resumePosition).toBe(1n);
    expect(s.failure!.message).toContain("after_position 1");
    expect(s.buffered).toBe(0);
    expect(s.next()).toBeUndefined();
  });

  it("tells its waiter when an event is queued or it fails", () => {
    const s = new TailSubscriber("tenant-a", 0n, all, 1);
    let calls = 0;
    s.onReady = () => calls++;
    const rs = records(2);
    s.offer(rs[0]!);
    s.offer(rs[1]!);
    expect(calls).toBe(2);
    expect(s.failure).not.toBeNull();
  });
});

describe("TailRegistry", () => {
  it("reads from the lowest position of a tenant's live subscribers", () => {
    const reg = new TailRegistry();
    reg.add(new TailSubscriber("tenant-a", 5n, all, 10));
    reg.add(new TailSubscriber("tenant-a", 3n, all, 10));
    reg.add(new TailSubscriber("tenant-b", 1n, all, 10));
    expect(reg.lowestPosition("tenant-a")).toBe(3n);
    expect(reg.lowestPosition("tenant-b")).toBe(1n);
    expect(reg.lowestPosition("tenant-c")).toBeNull();
  });

  it("gives each subscriber only what is after its own position, and only its tenant's events", () => {
    const reg = new TailRegistry();
    const early = new TailSubscriber("tenant-a", 1n, all, 10);
    const late = new TailSubscriber("tenant-a", 3n, all, 10);
    const other = new TailSubscriber("tenant-b", 0n, all, 10);
    for (const s of [early, late, other]) reg.add(s);
    expect(reg.deliver("tenant-a", 0n, records(4))).toBe(false);
    expect(drain(early)).toEqual([2n, 3n, 4n]);
    expect(drain(late)).toEqual([4n]);
    expect(drain(other)).toEqual([]);
  });

  it("skips a subscriber behind the read (it joined during it) and says so, so that its events are read next", () => {
    const reg = new TailRegistry();
    const ahead = new TailSubscriber("tenant-a", 4n, all, 10);
    const late = new TailSubscriber("tenant-a", 2n, all, 10);
    reg.add(ahead);
    reg.add(late);
    const rs = records(8);
    // The read after 4 was under way when `late` joined at 2: 3 and 4 are not in it.
    expect(reg.deliver("tenant-a", 4n, rs.slice(4, 6))).toBe(true);
    expect(drain(ahead)).toEqual([5n, 6n]);
    expect(drain(late)).toEqual([]);
    expect(late.position).toBe(2n);
    expect(late.idlePosition()).toBe(2n);
    expect(reg.lowestPosition("tenant-a")).toBe(2n);
    expect(reg.deliver("tenant-a", 2n, rs.slice(2, 8))).toBe(false);
    expect(drain(late)).toEqual([3n, 4n, 5n, 6n, 7n, 8n]);
    expect(drain(ahead)).toEqual([7n, 8n]);
  });

  it("removes a subscriber that overflows while the others go on", () => {
    const reg = new TailRegistry();
    const stalled = new TailSubscriber("tenant-a", 0n, all, 2);
    const reading = new TailSubscriber("tenant-a", 0n, all, 2);
    reg.add(stalled);
    reg.add(reading);
    const rs = records(6);
    for (let i = 0; i < rs.length; i += 2) {
      reg.deliver("tenant-a", BigInt(i), rs.slice(i, i + 2));
      drain(reading);
    }
    expect(stalled.failure?.resumePosition).toBe(0n);
    expect(reg.count("tenant-a")).toBe(1);
    expect(reading.position).toBe(6n);
    expect(reg.lowestPosition("tenant-a")).toBe(6n);
  });
});
