import { setTimeout as delay } from "node:timers/promises";

/** Waits `ms`, or less if `signal` aborts first; never rejects (the caller checks the signal if it cares why it woke). */
export function sleepUntilAborted(ms: number, signal: AbortSignal): Promise<void> {
  // timers/promises rejects with an AbortError on abort, the only way it can fail.
  return delay(ms, undefined, { signal }).then(
    () => undefined,
    () => undefined,
  );
}
