import { describe, expect, it } from "vitest";
import { ClosedError, GroupCommitter } from "../../src/store/group-commit.ts";

type Call = {
  items: number[];
  /** pendingEvents of the committer when the writer was called. */
  pending: number;
  resolve: (results?: string[]) => void;
  reject: (err: unknown) => void;
};

/**
 * A writer whose calls stay open until the test settles them. Results are
 * "r<item>" so a caller can check it got the answers to its own items.
 */
function manualWriter() {
  const calls: Call[] = [];
  let committer: GroupCommitter<number, string> | undefined;
  const waiting: (() => void)[] = [];
  const writer = (items: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({
        items: [...items],
        pending: committer!.pendingEvents,
        resolve: (results) => resolve(results ?? items.map((i) => `r${i}`)),
        reject,
      });
      for (const w of waiting.splice(0)) w();
    });
  return {
    calls,
    writer,
    attach(c: GroupCommitter<number, string>) {
      committer = c;
      return c;
    },
    /** Resolves once the writer has been called `n` times in total. */
    async called(n: number) {
      while (calls.length < n) await new Promise<void>((r) => waiting.push(r));
      return calls[n - 1]!;
    },
  };
}

/** Lets queued microtasks and setImmediate callbacks run. */
async function settle(rounds = 3) {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(p: Promise<T>) {
  const t = { settled: false, value: undefined as T | undefined, error: undefined as unknown, promise: p };
  p.then(
    (v) => {
      t.settled = true;
      t.value = v;
    },
    (e) => {
      t.settled = true;
      t.error = e;
    },
  );
  return t;
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe("GroupCommitter", () => {
  it("writes a single submission and resolves with one result per item, in order", async () => {
    const w = manualWriter();
    const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 100, maxPendingEvents: 1000 }));
    const { committed } = await gc.submit([1, 2, 3]);
    const call = await w.called(1);
    expect(call.items).toEqual([1, 2, 3]);
    call.resolve();
    await expect(committed).resolves.toEqual(["r1", "r2", "r3"]);
    expect(gc.pendingEvents).toBe(0);
  });

  it("combines concurrent submissions from several callers into one write", async () => {
    const w = manualWriter();
    const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 100, maxPendingEvents: 1000 }));
    const subs = await Promise.all([gc.submit([1, 2]), gc.submit([3]), gc.submit([4, 5, 6]), gc.submit([7])]);
    const call = await w.called(1);
    await settle();
    expect(w.calls).toHaveLength(1);
    expect(call.items).toEqual([1, 2, 3, 4, 5, 6, 7]);
    call.resolve();
    const results = await Promise.all(subs.map((s) => s.committed));
    expect(results).toEqual([["r1", "r2"], ["r3"], ["r4", "r5", "r6"], ["r7"]]);
  });

  it("routes results by position, not by value", async () => {
    const w = manualWriter();
    const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 100, maxPendingEvents: 1000 }));
    const a = await gc.submit([5, 5]);
    const b = await gc.submit([5]);
    const c = await gc.submit([5, 5, 5]);
    (await w.called(1)).resolve(["a1", "a2", "b1", "c1", "c2", "c3"]);
    expect(await a.committed).toEqual(["a1", "a2"]);
    expect(await b.committed).toEqual(["b1"]);
    expect(await c.committed).toEqual(["c1", "c2", "c3"]);
  });

  it("batches what arrives during a write into the next write", async () => {
    const w = manualWriter();
    const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 100, maxPendingEvents: 1000 }));
    const first = await gc.submit([1]);
    const call1 = await w.called(1);
    const later = await Promise.all([gc.submit([2]), gc.submit([3, 4]), gc.submit([5])]);
    await settle();
    expect(w.calls).toHaveLength(1); // one write at a time
    call1.resolve();
    const call2 = await w.called(2);
    expect(call2.items).toEqual([2, 3, 4, 5]);
    call2.resolve();
    expect(await first.committed).toEqual(["r1"]);
    expect(await Promise.all(later.map((s) => s.committed))).toEqual([["r2"], ["r3", "r4"], ["r5"]]);
  });

  it("never gives the writer more than maxBatchEvents, and never splits a submission", async () => {
    const w = manualWriter();
    const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 7, maxPendingEvents: 1000 }));
    const subs = await Promise.all(range(0, 10).map((i) => gc.submit(range(i * 3, 3))));
    for (let n = 1; n <= 5; n++) (await w.called(n)).resolve();
    await Promise.all(subs.map((s) => s.committed));
    expect(w.calls.map((c) => c.items.length)).toEqual([6, 6, 6, 6, 6]);
    // In submission order, each submission's items together.
    expect(w.calls.flatMap((c) => c.items)).toEqual(range(0, 30));
    for (const c of w.calls) expect(c.items.length % 3).toBe(0);
  });

  it("writes a single submission bigger than maxBatchEvents whole and alone", async () => {
    const w = manualWriter();
    const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 5, maxPendingEvents: 1000 }));
    const small1 = await gc.submit([1]);
    const big = await gc.submit(range(100, 12));
    const small2 = await gc.submit([2]);
    (await w.called(1)).resolve();
    (await w.called(2)).resolve();
    (await w.called(3)).resolve();
    expect(w.calls.map((c) => c.items)).toEqual([[1], range(100, 12), [2]]);
    expect(await big.committed).toHaveLength(12);
    expect(await small1.committed).toEqual(["r1"]);
    expect(await small2.committed).toEqual(["r2"]);
  });

  it("fills a batch up to exactly maxBatchEvents", async () => {
    const w = manualWriter();
    const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 5, maxPendingEvents: 1000 }));
    await Promise.all([gc.submit([1, 2]), gc.submit([3, 4, 5]), gc.submit([6])]);
    (await w.called(1)).resolve();
    (await w.called(2)).resolve();
    expect(w.calls.map((c) => c.items)).toEqual([[1, 2, 3, 4, 5], [6]]);
  });

  describe("backpressure", () => {
    it("admits up to maxPendingEvents and holds back the rest until the writer finishes", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 1000, maxPendingEvents: 100 }));
      // 100 events admitted at once.
      const admitted = await Promise.all(range(0, 10).map((i) => gc.submit(range(i * 10, 10))));
      expect(gc.pendingEvents).toBe(100);
      const call1 = await w.called(1);
      expect(call1.items).toHaveLength(100);

      // Beyond 100 pending: submit() stays unresolved.
      const order: string[] = [];
      const a = track(
        gc.submit(range(1000, 30)).then((s) => {
          order.push("a");
          return s;
        }),
      );
      const b = track(
        gc.submit(range(2000, 1)).then((s) => {
          order.push("b");
          return s;
        }),
      );
      const c = track(
        gc.submit(range(3000, 50)).then((s) => {
          order.push("c");
          return s;
        }),
      );
      await settle(5);
      expect([a.settled, b.settled, c.settled]).toEqual([false, false, false]);
      expect(gc.pendingEvents).toBe(100);
      expect(w.calls).toHaveLength(1);

      // The writer finishes: the waiters are admitted, first come first served.
      call1.resolve();
      await Promise.all(admitted.map((s) => s.committed));
      await settle(5);
      expect([a.settled, b.settled, c.settled]).toEqual([true, true, true]);
      expect(order).toEqual(["a", "b", "c"]);
      const call2 = await w.called(2);
      expect(call2.items).toEqual([...range(1000, 30), ...range(2000, 1), ...range(3000, 50)]);
      call2.resolve();
      for (const c of w.calls) expect(c.pending).toBeLessThanOrEqual(100);
      expect(w.calls.map((c) => c.pending)).toEqual([100, 81]);
      expect(await a.value!.committed).toHaveLength(30);
      expect(await b.value!.committed).toEqual(["r2000"]);
      expect(await c.value!.committed).toHaveLength(50);
    });

    it("keeps a big waiter ahead of small ones that would fit (FIFO, no starvation)", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 1000, maxPendingEvents: 100 }));
      await gc.submit(range(0, 60));
      const call1 = await w.called(1);
      const big = track(gc.submit(range(100, 60))); // 60 + 60 > 100: waits
      const small = track(gc.submit([999])); // 60 + 1 would fit, but must queue behind `big`
      await settle(5);
      expect(big.settled).toBe(false);
      expect(small.settled).toBe(false);
      expect(gc.pendingEvents).toBe(60);
      call1.resolve();
      await settle(5);
      expect(big.settled).toBe(true);
      expect(small.settled).toBe(true);
      const call2 = await w.called(2);
      expect(call2.items).toEqual([...range(100, 60), 999]);
    });

    it("stops a caller waiting for room when its signal aborts, queues nothing of it, and lets the next waiter in", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 1000, maxPendingEvents: 100 }));
      await gc.submit(range(0, 60));
      const call1 = await w.called(1);
      const deadline = new AbortController();
      const big = gc.submit(range(100, 60), deadline.signal); // waits: 60 + 60 > 100
      const small = track(gc.submit([999])); // behind `big`
      await settle(5);
      expect(small.settled).toBe(false);
      deadline.abort(new Error("deadline passed"));
      await expect(big).rejects.toThrow("deadline passed");
      await settle(5);
      expect(small.settled).toBe(true); // 60 + 1 fits once `big` has left the line
      expect(gc.pendingEvents).toBe(61);
      call1.resolve();
      const call2 = await w.called(2);
      expect(call2.items).toEqual([999]);
      await expect(gc.submit([1], AbortSignal.abort(new Error("already gone")))).rejects.toThrow("already gone");
    });

    it("admits only as many waiters as fit, in order, and the rest on the next write", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 1000, maxPendingEvents: 100 }));
      await gc.submit(range(0, 100));
      const call1 = await w.called(1);
      const waiters = [60, 40, 20, 5].map((n, i) => track(gc.submit(range((i + 1) * 1000, n))));
      await settle(5);
      expect(waiters.map((t) => t.settled)).toEqual([false, false, false, false]);
      call1.resolve();
      await settle(5);
      // 60 + 40 = 100 fit exactly; 20 does not, and 5 waits behind it.
      expect(waiters.map((t) => t.settled)).toEqual([true, true, false, false]);
      expect(gc.pendingEvents).toBe(100);
      const call2 = await w.called(2);
      expect(call2.items).toHaveLength(100);
      call2.resolve();
      await settle(5);
      expect(waiters.map((t) => t.settled)).toEqual([true, true, true, true]);
      const call3 = await w.called(3);
      expect(call3.items).toEqual([...range(3000, 20), ...range(4000, 5)]);
      call3.resolve();
      expect(w.calls.map((c) => c.pending)).toEqual([100, 100, 25]);
    });

    it("rejects a submission bigger than maxPendingEvents at once", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 10, maxPendingEvents: 100 }));
      await expect(gc.submit(range(0, 101))).rejects.toBeInstanceOf(RangeError);
      expect(gc.pendingEvents).toBe(0);
      // Exactly the limit is fine.
      const { committed } = await gc.submit(range(0, 100));
      (await w.called(1)).resolve();
      expect(await committed).toHaveLength(100);
    });

    it("never has more than maxPendingEvents pending, checked at every writer call (randomised load)", async () => {
      const maxPendingEvents = 50;
      const maxBatchEvents = 20;
      let seed = 12345;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const seenPending: number[] = [];
      const sizes: number[] = [];
      let gc: GroupCommitter<number, string>;
      const writer = async (items: number[]) => {
        seenPending.push(gc.pendingEvents);
        sizes.push(items.length);
        expect(gc.pendingEvents).toBeLessThanOrEqual(maxPendingEvents);
        for (let i = rand(4); i > 0; i--) await new Promise((r) => setImmediate(r));
        return items.map((x) => `r${x}`);
      };
      gc = new GroupCommitter(writer, { maxBatchEvents, maxPendingEvents });
      let next = 0;
      const callers = range(0, 12).map(async () => {
        const out: [number[], string[]][] = [];
        for (let k = 0; k < 25; k++) {
          const items = range(next, 1 + rand(15));
          next += items.length;
          expect(gc.pendingEvents).toBeLessThanOrEqual(maxPendingEvents);
          const { committed } = await gc.submit(items);
          expect(gc.pendingEvents).toBeLessThanOrEqual(maxPendingEvents);
          out.push([items, await committed]);
        }
        return out;
      });
      const all = (await Promise.all(callers)).flat();
      expect(all).toHaveLength(300);
      for (const [items, results] of all) expect(results).toEqual(items.map((x) => `r${x}`));
      expect(seenPending.length).toBeGreaterThan(10);
      expect(Math.max(...seenPending)).toBeLessThanOrEqual(maxPendingEvents);
      // The limit was actually reached for (otherwise backpressure was never exercised).
      expect(Math.max(...seenPending)).toBeGreaterThan(maxPendingEvents - 15);
      for (const s of sizes) expect(s).toBeLessThanOrEqual(maxBatchEvents);
      // Load actually combined callers (otherwise this test would prove little).
      expect(sizes.length).toBeLessThan(300);
      expect(gc.pendingEvents).toBe(0);
    });
  });

  describe("failures", () => {
    it("rejects exactly the callers of the failed batch; later batches still work", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 100, maxPendingEvents: 1000 }));
      const batch1 = await Promise.all([gc.submit([1]), gc.submit([2, 3])]);
      const call1 = await w.called(1);
      const batch2 = await Promise.all([gc.submit([4]), gc.submit([5])]);
      const failure = new Error("connection reset");
      call1.reject(failure);
      for (const s of batch1) await expect(s.committed).rejects.toBe(failure);
      const call2 = await w.called(2);
      expect(call2.items).toEqual([4, 5]);
      call2.resolve();
      expect(await Promise.all(batch2.map((s) => s.committed))).toEqual([["r4"], ["r5"]]);
      // And the committer keeps working afterwards.
      const after = await gc.submit([6]);
      (await w.called(3)).resolve();
      expect(await after.committed).toEqual(["r6"]);
      expect(gc.pendingEvents).toBe(0);
    });

    it("rejects the batch when the writer returns the wrong number of results", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 100, maxPendingEvents: 1000 }));
      const a = await gc.submit([1, 2]);
      const b = await gc.submit([3]);
      (await w.called(1)).resolve(["only-one"]);
      await expect(a.committed).rejects.toThrow(/1 results for 3 items/);
      await expect(b.committed).rejects.toThrow(/1 results for 3 items/);
    });

    it("survives a writer that throws synchronously", async () => {
      let fail = true;
      const gc = new GroupCommitter<number, number>(
        (items) => {
          if (fail) throw new Error("sync boom");
          return Promise.resolve(items.map((x) => x * 2));
        },
        { maxBatchEvents: 10, maxPendingEvents: 100 },
      );
      const a = await gc.submit([1]);
      await expect(a.committed).rejects.toThrow("sync boom");
      fail = false;
      const b = await gc.submit([2]);
      expect(await b.committed).toEqual([4]);
      expect(gc.pendingEvents).toBe(0);
    });

    it("frees the room of a failed batch for waiting callers", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 1000, maxPendingEvents: 10 }));
      const first = await gc.submit(range(0, 10));
      const call1 = await w.called(1);
      const waiter = track(gc.submit([42]));
      await settle(5);
      expect(waiter.settled).toBe(false);
      call1.reject(new Error("boom"));
      await expect(first.committed).rejects.toThrow("boom");
      await settle(5);
      expect(waiter.settled).toBe(true);
      (await w.called(2)).resolve();
      expect(await waiter.value!.committed).toEqual(["r42"]);
    });
  });

  describe("close", () => {
    it("resolves at once when idle, then rejects new submissions with ClosedError", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 10, maxPendingEvents: 100 }));
      await gc.close();
      await expect(gc.submit([1])).rejects.toBeInstanceOf(ClosedError);
      expect(w.calls).toHaveLength(0);
    });

    it("flushes what is queued and in flight before resolving", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 2, maxPendingEvents: 100 }));
      const subs = await Promise.all([gc.submit([1, 2]), gc.submit([3, 4]), gc.submit([5])]);
      const call1 = await w.called(1);
      const closed = track(gc.close());
      await settle();
      expect(closed.settled).toBe(false);
      await expect(gc.submit([6])).rejects.toBeInstanceOf(ClosedError);
      call1.resolve();
      (await w.called(2)).resolve();
      await settle();
      expect(closed.settled).toBe(false); // [5] still to write
      (await w.called(3)).resolve();
      await closed.promise;
      expect(w.calls.map((c) => c.items)).toEqual([[1, 2], [3, 4], [5]]);
      expect(await Promise.all(subs.map((s) => s.committed))).toEqual([["r1", "r2"], ["r3", "r4"], ["r5"]]);
      expect(gc.pendingEvents).toBe(0);
    });

    it("resolves even when the last batch fails", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 10, maxPendingEvents: 100 }));
      const s = await gc.submit([1]);
      const call1 = await w.called(1);
      const closed = gc.close();
      call1.reject(new Error("down"));
      await expect(s.committed).rejects.toThrow("down");
      await expect(closed).resolves.toBeUndefined();
    });

    it("rejects callers still waiting for room with ClosedError", async () => {
      const w = manualWriter();
      const gc = w.attach(new GroupCommitter(w.writer, { maxBatchEvents: 100, maxPendingEvents: 10 }));
      const admitted = await gc.submit(range(0, 10));
      const call1 = await w.called(1);
      const waiting = track(gc.submit([99]));
      await settle();
      const closed = gc.close();
      await settle();
      expect(waiting.settled).toBe(true);
      expect(waiting.error).toBeInstanceOf(ClosedError);
      call1.resolve();
      await closed;
      expect(await admitted.committed).toHaveLength(10);
      expect(w.calls).toHaveLength(1);
    });

    it("ClosedError says the service is shutting down", () => {
      const e = new ClosedError();
      expect(e).toBeInstanceOf(Error);
      expect(e.message).toMatch(/shutting down/);
    });
  });

  describe("lanes (several transactions at once, by key)", () => {
    /** Items 100-199 belong to key "1", 200-299 to key "2", ...: a tenant each. */
    const byHundreds = (x: number) => String(Math.floor(x / 100));
    const laned = (w: ReturnType<typeof manualWriter>, lanes: number, maxBatchEvents = 100, maxPendingEvents = 1000) =>
      w.attach(new GroupCommitter(w.writer, { maxBatchEvents, maxPendingEvents, lanes, laneKey: byHundreds }));

    it("writes other keys in another lane while one is being written, up to `lanes` at once", async () => {
      const w = manualWriter();
      const gc = laned(w, 2);
      const a = await gc.submit([100]);
      const call1 = await w.called(1);
      const b = await gc.submit([200]);
      const call2 = await w.called(2); // without waiting for call1
      expect(call2.items).toEqual([200]);
      const c = await gc.submit([300]);
      await settle(5);
      expect(w.calls).toHaveLength(2); // both lanes busy
      call2.resolve();
      expect(await b.committed).toEqual(["r200"]);
      const call3 = await w.called(3);
      expect(call3.items).toEqual([300]);
      call3.resolve();
      call1.resolve();
      expect(await a.committed).toEqual(["r100"]);
      expect(await c.committed).toEqual(["r300"]);
      expect(gc.pendingEvents).toBe(0);
    });

    it("never gives a key being written to another lane: its submissions wait, and are committed in submission order", async () => {
      const w = manualWriter();
      const gc = laned(w, 3);
      const first = await gc.submit([100]);
      const call1 = await w.called(1);
      const later = await Promise.all([gc.submit([101, 102]), gc.submit([200]), gc.submit([103])]);
      const call2 = await w.called(2);
      await settle(5);
      expect(call2.items).toEqual([200]);
      expect(w.calls).toHaveLength(2); // a third lane is free, but key 1 is in call1
      call2.resolve();
      await settle(5);
      expect(w.calls).toHaveLength(2);
      call1.resolve();
      const call3 = await w.called(3);
      expect(call3.items).toEqual([101, 102, 103]);
      call3.resolve();
      expect(await first.committed).toEqual(["r100"]);
      expect(await Promise.all(later.map((s) => s.committed))).toEqual([["r101", "r102"], ["r200"], ["r103"]]);
    });

    it("spreads the waiting keys over the free lanes, those with the fewest events queued together", async () => {
      const w = manualWriter();
      const gc = laned(w, 2);
      const subs = await Promise.all([gc.submit(range(100, 5)), gc.submit([200]), gc.submit([300, 301])]);
      const call1 = await w.called(1);
      const call2 = await w.called(2);
      expect(call1.items).toEqual([200, 300, 301]);
      expect(call2.items).toEqual(range(100, 5));
      call1.resolve();
      call2.resolve();
      expect(await Promise.all(subs.map((s) => s.committed))).toEqual([range(100, 5).map((x) => `r${x}`), ["r200"], ["r300", "r301"]]);
    });

    it("fills a batch round robin across keys, so one key's queue does not crowd out the others", async () => {
      const w = manualWriter();
      const gc = laned(w, 1, 6);
      await gc.submit([1]);
      const call1 = await w.called(1);
      // Key 1 queues three submissions of 3 before keys 2 and 3 queue one each.
      const subs = await Promise.all([gc.submit(range(100, 3)), gc.submit(range(103, 3)), gc.submit(range(106, 3))]);
      const others = await Promise.all([gc.submit([200]), gc.submit([300])]);
      call1.resolve();
      const call2 = await w.called(2);
      // In submission order this batch would be 100-105 and keys 2 and 3 would wait.
      expect(call2.items).toEqual([100, 101, 102, 200, 300]);
      call2.resolve();
      const call3 = await w.called(3);
      expect(call3.items).toEqual(range(103, 6));
      call3.resolve();
      expect(await Promise.all(others.map((s) => s.committed))).toEqual([["r200"], ["r300"]]);
      expect((await Promise.all(subs.map((s) => s.committed))).flat()).toEqual(range(100, 9).map((x) => `r${x}`));
    });

    it("moves a key that had to leave submissions behind to the back of the round robin", async () => {
      const w = manualWriter();
      const gc = laned(w, 1, 2);
      await gc.submit([1]);
      const call1 = await w.called(1);
      await Promise.all([gc.submit([100]), gc.submit([101]), gc.submit([200]), gc.submit([201]), gc.submit([300])]);
      call1.resolve();
      for (let n = 2; n <= 4; n++) (await w.called(n)).resolve();
      expect(w.calls.slice(1).map((c) => c.items)).toEqual([[100, 200], [300, 101], [201]]);
    });

    it("fails only the callers of the lane whose transaction failed", async () => {
      const w = manualWriter();
      const gc = laned(w, 2);
      const a = await gc.submit([100]);
      const call1 = await w.called(1);
      const b = await gc.submit([200]);
      const call2 = await w.called(2);
      call1.reject(new Error("deadlock detected"));
      await expect(a.committed).rejects.toThrow("deadlock detected");
      call2.resolve();
      expect(await b.committed).toEqual(["r200"]);
      const again = await gc.submit([101]);
      (await w.called(3)).resolve();
      expect(await again.committed).toEqual(["r101"]);
    });

    it("keeps backpressure across lanes: the events of every lane count", async () => {
      const w = manualWriter();
      const gc = laned(w, 2, 1000, 10);
      await gc.submit(range(100, 6));
      await gc.submit(range(200, 4));
      await w.called(2);
      const waiting = track(gc.submit([300]));
      await settle(5);
      expect(waiting.settled).toBe(false);
      expect(gc.pendingEvents).toBe(10);
      w.calls[1]!.resolve();
      await settle(5);
      expect(waiting.settled).toBe(true);
      w.calls[0]!.resolve();
      (await w.called(3)).resolve();
      expect(await waiting.value!.committed).toEqual(["r300"]);
    });

    it("close() flushes every lane and the queue before resolving", async () => {
      const w = manualWriter();
      const gc = laned(w, 2);
      const subs = [await gc.submit([100]), await gc.submit([200])];
      await w.called(2);
      subs.push(await gc.submit([101]));
      const closed = track(gc.close());
      await expect(gc.submit([300])).rejects.toBeInstanceOf(ClosedError);
      w.calls[1]!.resolve();
      await settle(5);
      expect(closed.settled).toBe(false);
      w.calls[0]!.resolve();
      const call3 = await w.called(3);
      expect(call3.items).toEqual([101]);
      await settle(5);
      expect(closed.settled).toBe(false);
      call3.resolve();
      await closed.promise;
      expect(await Promise.all(subs.map((s) => s.committed))).toEqual([["r100"], ["r200"], ["r101"]]);
    });

    it("reports each transaction to observe and runs each inside around", async () => {
      const observed: number[] = [];
      const arounds: unknown[][] = [];
      let n = 0;
      const w = manualWriter();
      const gc = w.attach(
        new GroupCommitter(w.writer, {
          maxBatchEvents: 100,
          maxPendingEvents: 1000,
          lanes: 2,
          laneKey: byHundreds,
          observe: (events) => observed.push(events),
          tag: () => `caller-${++n}`,
          around: (tags, write) => {
            arounds.push(tags);
            return write();
          },
        }),
      );
      const a = await gc.submit([100, 101]);
      await w.called(1);
      const b = await gc.submit([200]);
      await w.called(2);
      w.calls[1]!.resolve();
      w.calls[0]!.resolve();
      await Promise.all([a.committed, b.committed]);
      expect(observed.sort()).toEqual([1, 2]);
      expect(arounds).toEqual([["caller-1"], ["caller-2"]]);
    });

    it("refuses a submission whose items have different keys, and lanes below 1", async () => {
      const w = manualWriter();
      const gc = laned(w, 2);
      await expect(gc.submit([100, 200])).rejects.toBeInstanceOf(RangeError);
      expect(gc.pendingEvents).toBe(0);
      expect(() => new GroupCommitter(w.writer, { maxBatchEvents: 1, maxPendingEvents: 1, lanes: 0 })).toThrow(RangeError);
    });

    it("keeps each key's order, never writes a key in two lanes at once, and uses the lanes (randomised load)", async () => {
      const lanes = 3;
      let seed = 777;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const writing = new Set<string>();
      let concurrent = 0;
      let maxConcurrent = 0;
      /** Each key's items in the order the writer got them. */
      const written = new Map<string, number[]>();
      const writer = async (items: number[]) => {
        const keys = new Set(items.map(byHundreds));
        for (const k of keys) {
          expect(writing.has(k)).toBe(false);
          writing.add(k);
        }
        maxConcurrent = Math.max(maxConcurrent, ++concurrent);
        for (const x of items) written.set(byHundreds(x), [...(written.get(byHundreds(x)) ?? []), x]);
        for (let i = rand(5); i > 0; i--) await new Promise((r) => setImmediate(r));
        concurrent--;
        for (const k of keys) writing.delete(k);
        return items.map((x) => `r${x}`);
      };
      const gc = new GroupCommitter(writer, { maxBatchEvents: 10, maxPendingEvents: 60, lanes, laneKey: byHundreds });
      const submitted = new Map<string, number[]>();
      const callers = range(1, 6).map(async (key) => {
        let next = key * 100;
        for (let k = 0; k < 15; k++) {
          const items = range(next, 1 + rand(4));
          next += items.length;
          submitted.set(String(key), [...(submitted.get(String(key)) ?? []), ...items]);
          const { committed } = await gc.submit(items);
          // Some callers wait for their commit, others go on at once (a stream).
          if (rand(2) === 0) expect(await committed).toEqual(items.map((x) => `r${x}`));
        }
      });
      await Promise.all(callers);
      await gc.close();
      for (const [key, items] of submitted) expect(written.get(key)).toEqual(items);
      expect(maxConcurrent).toBeGreaterThan(1);
      expect(maxConcurrent).toBeLessThanOrEqual(lanes);
      expect(gc.pendingEvents).toBe(0);
    });
  });
});
