// Late answers for callers who are refused over and over. A refusal is
// cheap for the client that caused it (an Append over the tenant's rate,
// a search over the query limits, a call its key may not make), so a
// client that ignores the answer and its retry delay sends as many as the
// service can answer, and what those answers cost the service's one event
// loop is taken from every other tenant. Past `freePerSecond` refusals in a
// second, each further refusal of that caller is answered after `delayMs`:
// a client that waits for its answers then gets at most its concurrency /
// delay refusals a second, and a held answer costs a timer, not CPU.
// Concurrency itself is bounded by HTTP/2's streams per connection
// (listener.ts) and the per-key stream limits.
//
// Callers are told apart by `callerOf` (the authenticated key or token,
// else the peer address). Counts are per replica, in one-second windows,
// for at most `maxCallers` callers at once (past that, new callers are not
// delayed: memory stays bounded).
import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { sleepUntilAborted } from "../platform/abortable-sleep.ts";

/** What a client's own mistakes and refusals are answered with (not the service's failures). */
const REFUSALS = new Set([Code.InvalidArgument, Code.ResourceExhausted, Code.PermissionDenied, Code.Unauthenticated]);

export type RefusalTarpitOptions = {
  /** Refusals of one caller in one second answered at once. */
  freePerSecond: number;
  /** How late each further refusal in that second is answered; 0: never delayed. */
  delayMs: number;
  maxCallers?: number;
};

type Window = { start: number; count: number };

export class RefusalTarpit {
  private readonly opts: Required<RefusalTarpitOptions>;
  private readonly windows = new Map<string, Window>();
  private delayedCount = 0;

  constructor(opts: RefusalTarpitOptions) {
    this.opts = { maxCallers: 100_000, ...opts };
  }

  /** Counts one refusal of `caller` at `now` (ms) and returns how late to answer it. */
  refused(caller: string, now: number): number {
    let w = this.windows.get(caller);
    if (!w || now - w.start >= 1000) {
      if (!w && this.windows.size >= this.opts.maxCallers) this.sweep(now);
      if (!w && this.windows.size >= this.opts.maxCallers) return 0;
      w = { start: now, count: 0 };
      this.windows.set(caller, w);
    }
    w.count++;
    if (w.count <= this.opts.freePerSecond || this.opts.delayMs === 0) return 0;
    this.delayedCount++;
    return this.opts.delayMs;
  }

  /** Refusals answered late since start. */
  get delayed(): number {
    return this.delayedCount;
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= 1000) this.windows.delete(k);
  }
}

/**
 * Delays the refusals `tarpit` says to (see the note at the top); the error
 * is the call's own, only later. `callerOf` names the caller from the call's
 * context values once the call has failed, or null to never delay it.
 */
export function refusalTarpitInterceptor(tarpit: RefusalTarpit, callerOf: (values: ContextValues) => string | null): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      const code = ConnectError.from(err).code;
      const caller = REFUSALS.has(code) ? callerOf(req.contextValues) : null;
      const ms = caller === null ? 0 : tarpit.refused(caller, Date.now());
      if (ms > 0) await sleepUntilAborted(ms, req.signal);
      throw err;
    }
  };
}
