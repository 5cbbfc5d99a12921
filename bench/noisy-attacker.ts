// The hostile tenant of bench/noisy-neighbour.ts, in a process of its own:
// its loops get an event loop of their own, so the quiet tenant's latencies
// measure the service, not a client loop shared with the attacker, and the
// parent can lower its CPU priority (--attacker-nice) as a stand-in for an
// attacker on another machine.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventSchema } from "../gen/auditlog/v1/event_pb.js";
import { IngestService } from "../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../gen/auditlog/v1/query_pb.js";
import type { TimedCall } from "./call-overlap.ts";

export type AttackerOptions = {
  url: string;
  key: string;
  attacks: string[];
  searchStreams: number;
  burstStreams: number;
  /** steady: events a second, in Appends of 100, and GetEvent calls a second (0: none). */
  steadyIngestRate?: number;
  steadyReadRate?: number;
  /** Keep every call's kind, answer, start and end (bench/call-overlap.ts). */
  timeline?: boolean;
};

/** What the attacker sends back when stopped: its calls by kind and answer, and with `timeline` each call. */
export type AttackerReport = { counts: Record<string, number>; timeline: TimedCall[] };

/** Milliseconds on a clock the parent process shares. */
export const wallClock = () => performance.timeOrigin + performance.now();

function bearer(key: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

function attack(o: AttackerOptions): { stop: () => Promise<AttackerReport> } {
  const transport = createGrpcTransport({ baseUrl: o.url, interceptors: [bearer(o.key)] });
  const attackerIngest = createClient(IngestService, transport);
  const attackerQuery = createClient(QueryService, transport);
  const ATTACKS = new Set(o.attacks);
  const SEARCH_STREAMS = o.searchStreams;
  const BURST_STREAMS = o.burstStreams;
  let running = true;
  const counts: Record<string, number> = {};
  const timeline: TimedCall[] = [];
  /** Counts a call that started at `start` (wallClock) and has just been answered. */
  const outcome = (kind: string, start: number, err?: unknown) => {
    const k = `${kind}:${err === undefined ? "OK" : err instanceof ConnectError ? Code[err.code] : "error"}`;
    counts[k] = (counts[k] ?? 0) + 1;
    if (o.timeline) timeline.push({ kind: k, start, end: wallClock() });
  };
  const loop = async (kind: string, fn: (i: number) => Promise<unknown>) => {
    for (let i = 0; running; i++) {
      const start = wallClock();
      try {
        await fn(i);
        outcome(kind, start);
      } catch (err) {
        outcome(kind, start, err);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  const notFoundIsFine = (err: unknown) => {
    if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
  };
  const burstLoop = async (kind: string, fn: () => Promise<unknown>) => {
    while (running) {
      const start = wallClock();
      try {
        await fn();
        outcome(kind, start);
      } catch (err) {
        outcome(kind, start, err);
        // Yield to the event loop, no more.
        await new Promise((r) => setImmediate(r));
      }
    }
  };
  // Calls started on a fixed schedule, `perSecond` a second, whatever the answers take (open loop).
  const paced = async (kind: string, perSecond: number, fn: () => Promise<unknown>) => {
    if (perSecond <= 0) return;
    const start = performance.now();
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; running; i++) {
      const due = start + (i * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!running) break;
      const begun = wallClock();
      const call: Promise<void> = fn().then(
        () => outcome(kind, begun),
        (err: unknown) => outcome(kind, begun, err),
      );
      inFlight.add(call);
      void call.finally(() => inFlight.delete(call));
    }
    await Promise.all(inFlight);
  };
  // Cheap calls (a lookup by id), so that their number, not their cost, is what the tenant's read rate stops.
  const missingEvent = () => attackerQuery.getEvent({ id: "no-such-event" }, { timeoutMs: 60_000 }).catch(notFoundIsFine);
  const smallEvents = (action: string) =>
    Array.from({ length: 100 }, () => ({
      action,
      occurredAt: timestampFromDate(new Date()),
      actor: { id: "a" },
      target: { type: "t", id: "t" },
    }));
  const month = (n: number) => timestampFromDate(new Date(Date.UTC(2100, n % 1_800, 1)));
  const negated = Array.from({ length: 40 }, (_, i) => `-w${i}${"q".repeat(1)}`)
    .join(" ")
    .slice(0, 243);
  // One message, built once and sent again and again (each admitted copy is
  // 1,000 new events): the service's work per call is the same as with a new
  // message each time. The attacker's client still spends 10-14 % of a core
  // (at nice 19) encoding it for every call, as before.
  const monthsApartBody = {
    events: Array.from({ length: 1000 }, (_, k) => ({
      action: "x.y",
      occurredAt: month(k),
      actor: { id: "a" },
      target: { type: "t", id: "t" },
    })),
  };
  const monthsApart = () => attackerIngest.append(monthsApartBody, { timeoutMs: 60_000 });
  // The same events with the same ids every time: after the first, each
  // Append is 1,000 duplicates, all the service's own work on the request
  // and almost none of PostgreSQL's (nothing new is written).
  const sameIdsBody = { events: monthsApartBody.events.map((e) => ({ ...e, id: randomUUID() })) };
  const sameIds = () => attackerIngest.append(sameIdsBody, { timeoutMs: 60_000 });
  const loops = [
    ATTACKS.has("shards") && loop("shards", monthsApart),
    // The same Appends at 90 % of the tenant's ingest rate, none refused:
    // what its accepted 1,000-event transactions cost, apart from its refused bodies.
    ATTACKS.has("shards-paced") && paced("shards-paced", (o.steadyIngestRate ?? 0) / 1000, monthsApart),
    ATTACKS.has("duplicates-paced") && paced("duplicates-paced", (o.steadyIngestRate ?? 0) / 1000, sameIds),
    ATTACKS.has("timestamp") &&
      loop("timestamp", () =>
        attackerIngest.append(
          {
            events: [
              create(EventSchema, {
                action: "x.z",
                occurredAt: { seconds: 9223372035n, nanos: 1999999999 },
                actor: { id: "a" },
                target: { type: "t", id: "t" },
              }),
            ],
          },
          { timeoutMs: 60_000 },
        ),
      ),
    ...Array.from({ length: ATTACKS.has("search") ? SEARCH_STREAMS : 0 }, () =>
      loop("search", () => attackerQuery.searchEvents({ filter: { query: negated }, pageSize: 100 }, { timeoutMs: 120_000 })),
    ),
    // No pause after a refusal either: a client that ignores the retry delay.
    ...Array.from({ length: ATTACKS.has("burst") ? BURST_STREAMS : 0 }, () =>
      burstLoop("burst-append", () => attackerIngest.append({ events: smallEvents("x.burst") }, { timeoutMs: 60_000 })),
    ),
    ...Array.from({ length: ATTACKS.has("burst") ? BURST_STREAMS : 0 }, () => burstLoop("burst-read", missingEvent)),
    // The tenant at its limits, never over them: what the limits let it cost the others.
    ATTACKS.has("steady") &&
      paced("steady-append", (o.steadyIngestRate ?? 0) / 100, () =>
        attackerIngest.append({ events: smallEvents("x.steady") }, { timeoutMs: 60_000 }),
      ),
    ATTACKS.has("steady") && paced("steady-read", o.steadyReadRate ?? 0, missingEvent),
  ];
  return {
    async stop() {
      running = false;
      await Promise.all(loops.filter(Boolean));
      return { counts, timeline };
    },
  };
}

// Child protocol (IPC): the first message is the options and starts the
// loops; "stop" ends them and is answered with an AttackerReport.
if (process.send) {
  let running: ReturnType<typeof attack> | null = null;
  process.on("message", (msg: AttackerOptions | "stop") => {
    if (msg !== "stop") running = attack(msg);
    else void running?.stop().then((report) => process.send!(report, () => process.exit(0)));
  });
}
