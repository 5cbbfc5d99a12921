// Background work that repeats (reconciler, retention, checkpoints): one run
// at a time, the next an interval after the previous one ended, so slow runs
// never overlap or pile up; stop() waits for the run in progress. Timers are
// unref'd: background work never keeps the process alive.
export class Periodic {
  private readonly run: () => Promise<unknown>;
  private readonly onError: (err: unknown) => void;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  /** `onError` receives whatever a run throws; the schedule goes on. */
  constructor(run: () => Promise<unknown>, onError: (err: unknown) => void) {
    this.run = run;
    this.onError = onError;
  }

  /** Runs every `intervalMs`, the first run after one interval (or at once with `immediately`). */
  start(intervalMs: number, opts: { immediately?: boolean } = {}): void {
    if (this.timer || this.running || this.stopped) return;
    const once = () => {
      this.timer = null;
      this.running = this.run()
        .then(
          () => undefined,
          (err: unknown) => this.onError(err),
        )
        .finally(() => {
          this.running = null;
          schedule();
        });
    };
    const schedule = () => {
      if (this.stopped) return;
      this.timer = setTimeout(once, intervalMs);
      this.timer.unref();
    };
    if (opts.immediately) once();
    else schedule();
  }

  /** No run starts after this; resolves once the run in progress (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
