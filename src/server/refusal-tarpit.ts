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
// Free refusals come from a token bucket per caller (`freePerSecond` a
// second, as many at most in a burst), not a fixed one-second window: with
// a window, a client's parallel loops were all answered at once at the start
// of each second and came back together, a burst of calls every second that
// the event loop worked through while other tenants' calls waited. For the
// same reason each late answer is `delayMs` to 1.5 times that, at random, so
// that a client's streams held together are not answered together either.
//
// Callers are told apart by `callerOf` (the authenticated key or token,
// else the peer address). Counts are per replica, for at most `maxCallers`
// callers at once (past that, new callers are not delayed: memory stays
// bounded).
import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { sleepUntilAborted } from "../platform/abortable-sleep.ts";

/** What a client's own mistakes and refusals are answered with (not the service's failures). */
const REFUSALS = new Set([Code.InvalidArgument, Code.ResourceExhausted, Code.PermissionDenied, Code.Unauthenticated]);

export type RefusalTarpitOptions = {
  /** Refusals of one caller a second answered at once, on average; as many at most in a burst. */
  freePerSecond: number;
  /** How late each further refusal is answered, at least (at most 1.5 times this); 0: never delayed. */
  delayMs: number;
  maxCallers?: number;
  /** In [0, 1): where in its range each delay falls (Math.random; fixed in tests). */
  random?: () => number;
};

/** A caller's free refusals left at `at` (ms). */
type Bucket = { tokens: number; at: number };

export class RefusalTarpit {
  private readonly opts: Required<RefusalTarpitOptions>;
  private readonly buckets = new Map<string, Bucket>();
  private delayedCount = 0;

  constructor(opts: RefusalTarpitOptions) {
    this.opts = { maxCallers: 100_000, random: Math.random, ...opts };
  }

  /** Counts one refusal of `caller` at `now` (ms) and returns how late to answer it. */
  refused(caller: string, now: number): number {
    const { freePerSecond, delayMs } = this.opts;
    let b = this.buckets.get(caller);
    if (!b) {
      if (this.buckets.size >= this.opts.maxCallers) this.sweep(now);
      if (this.buckets.size >= this.opts.maxCallers) return 0;
      b = { tokens: freePerSecond, at: now };
      this.buckets.set(caller, b);
    } else {
      // Date.now() may step back (clock adjustments): never take refusals back for it.
      b.tokens = Math.min(freePerSecond, b.tokens + (Math.max(0, now - b.at) * freePerSecond) / 1000);
      b.at = Math.max(b.at, now);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    if (delayMs === 0) return 0;
    this.delayedCount++;
    return delayMs + Math.floor((this.opts.random() * delayMs) / 2);
  }

  /** Refusals answered late since start. */
  get delayed(): number {
    return this.delayedCount;
  }

  /** Forgets the callers whose buckets are full again (a second untouched, without free refusals): nothing is lost. */
  private sweep(now: number): void {
    const free = this.opts.freePerSecond;
    for (const [k, b] of this.buckets) {
      const full = free > 0 ? b.tokens + ((now - b.at) * free) / 1000 >= free : now - b.at >= 1000;
      if (full) this.buckets.delete(k);
    }
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
