import { afterEach, describe, expect, it, vi } from "vitest";
import { Periodic } from "../../src/platform/periodic.ts";

describe("Periodic", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("runs one interval after the previous run ended, never two at once", async () => {
    vi.useFakeTimers();
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const p = new Periodic(
      async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        runs++;
        await new Promise((r) => setTimeout(r, 250)); // longer than the interval
        active--;
      },
      () => {},
    );
    p.start(100);
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toBe(1);
    await vi.advanceTimersByTimeAsync(300); // run 1 ends at 350, run 2 starts at 450
    expect(runs).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toBe(2);
    expect(maxActive).toBe(1);
    const stopping = p.stop();
    await vi.advanceTimersByTimeAsync(250); // run 2 ends; no run 3
    await stopping;
    expect(runs).toBe(2);
  });

  it("reports a failed run and keeps the schedule", async () => {
    vi.useFakeTimers();
    const errors: unknown[] = [];
    let runs = 0;
    const p = new Periodic(
      async () => {
        runs++;
        throw new Error(`run ${runs}`);
      },
      (err) => errors.push(err),
    );
    p.start(10, { immediately: true });
    await vi.advanceTimersByTimeAsync(25);
    expect(runs).toBe(3);
    expect(errors.map((e) => (e as Error).message)).toEqual(["run 1", "run 2", "run 3"]);
    await p.stop();
  });

  it("stop waits for the run in progress and starts no other", async () => {
    let release!: () => void;
    let runs = 0;
    const p = new Periodic(
      () => {
        runs++;
        return new Promise<void>((r) => {
          release = r;
        });
      },
      () => {},
    );
    p.start(5, { immediately: true });
    let stopped = false;
    const stopping = p.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(stopped).toBe(false);
    release();
    await stopping;
    await new Promise((r) => setTimeout(r, 20));
    expect(runs).toBe(1);
  });
});
