// Live tail of the current query over TailEvents (a server stream), with
// pause (events are kept, not shown) and resume. A dropped stream reconnects
// from the last position seen, so nothing is missed or shown twice.
import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useRef, useState } from "preact/hooks";
import type { StoredEvent } from "../../gen/auditlog/v1/event_pb.js";
import type { Clients } from "./api.ts";
import { type ShownError, showError } from "./errors.ts";
import { type QueryState, toEventFilter } from "./query-state.ts";

const KEEP = 500;

export type Tail = { events: StoredEvent[]; held: number; error: ShownError | null; connected: boolean };

export function useTail(clients: Clients, query: QueryState, on: boolean, paused: boolean): Tail {
  const [events, setEvents] = useState<StoredEvent[]>([]);
  const [error, setError] = useState<ShownError | null>(null);
  const [connected, setConnected] = useState(false);
  const held = useRef<StoredEvent[]>([]);
  const [heldCount, setHeldCount] = useState(0);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    if (!paused && held.current.length) {
      const flush = held.current;
      held.current = [];
      setHeldCount(0);
      setEvents((prev) => [...flush.reverse(), ...prev].slice(0, KEEP));
    }
  }, [paused]);

  useEffect(() => {
    if (!on) return;
    setEvents([]);
    held.current = [];
    setHeldCount(0);
    setError(null);
    const abort = new AbortController();
    let after: bigint | undefined;
    const filter = toEventFilter(query);
    // The tail is about what comes next: no lower time bound from the range preset.
    delete filter.occurredAfter;
    (async () => {
      let retryMs = 500;
      while (!abort.signal.aborted) {
        try {
          const stream = clients.query.tailEvents(
            { filter, ...(after !== undefined ? { afterPosition: after } : {}) },
            { signal: abort.signal },
          );
          for await (const msg of stream) {
            // The server's first message (a heartbeat) comes once it is subscribed: from then on nothing is missed.
            setConnected(true);
            retryMs = 500;
            if (msg.item.case === "heartbeat") {
              after = msg.item.value.position;
            } else if (msg.item.case === "event") {
              const ev = msg.item.value;
              after = ev.sequence;
              if (pausedRef.current) {
                held.current.push(ev);
                setHeldCount(held.current.length);
              } else {
                setEvents((prev) => [ev, ...prev].slice(0, KEEP));
              }
            }
          }
        } catch (err) {
          if (abort.signal.aborted) break;
          const e = ConnectError.from(err);
          setConnected(false);
          setError(showError(e));
          // Bad input or no permission will not get better by retrying.
          if ([Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated, Code.Unimplemented].includes(e.code)) return;
        }
        setConnected(false);
        await new Promise((r) => setTimeout(r, retryMs));
        retryMs = Math.min(retryMs * 2, 10_000);
      }
    })();
    return () => {
      abort.abort();
      setConnected(false);
    };
  }, [on, clients, JSON.stringify(query)]);

  return { events, held: heldCount, error, connected };
}
