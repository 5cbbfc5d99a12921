// One TailEvents stream: catch up from the requested position with paged
// reads of its own (so a client far behind never drags the shared feed
// back), then join the replica's feed at the position it reached and send
// what the feed queues for it, with a heartbeat whenever it has been idle
// for the interval.
import { create } from "@bufbuild/protobuf";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type TailEventsRequest,
  TailEventsRequestSchema,
  type TailEventsResponse,
  TailEventsResponseSchema,
  TailHeartbeatSchema,
} from "../../../gen/auditlog/v1/query_pb.js";
import type { StoredRecord } from "../../domain/event-record.ts";
import { storedEventFromRecord } from "../../domain/event-record.ts";
import { matchesQuery } from "../../domain/match-query.ts";
import type { TailSubscriber } from "../../domain/tail-subscribers.ts";
import { queryOf } from "../event-filter.ts";
import { validateRequest } from "../request-context.ts";
import type { TailFeed } from "./tail-feed.ts";

export type TailReader = {
  head(tenantId: string, signal?: AbortSignal): Promise<bigint>;
  readAfter(tenantId: string, after: bigint, limit: number, signal?: AbortSignal): Promise<StoredRecord[]>;
};

export type TailDeps = {
  validator: Validator;
  reader: TailReader;
  feed: TailFeed;
  /** Default heartbeat interval. */
  heartbeatMs: number;
  /** Events per catch-up read. */
  batchSize: number;
};

const eventItem = (r: StoredRecord): TailEventsResponse =>
  create(TailEventsResponseSchema, { item: { case: "event", value: storedEventFromRecord(r) } });

const heartbeatItem = (position: bigint): TailEventsResponse =>
  create(TailEventsResponseSchema, { item: { case: "heartbeat", value: create(TailHeartbeatSchema, { position }) } });

export async function* tailStream(
  deps: TailDeps,
  tenantId: string,
  req: TailEventsRequest,
  signal: AbortSignal,
): AsyncGenerator<TailEventsResponse> {
  validateRequest(deps.validator, TailEventsRequestSchema, req);
  const q = queryOf(req.filter);
  const matches = (r: StoredRecord) => matchesQuery(r, q);
  const heartbeatMs = req.heartbeatSeconds ? Math.max(1, req.heartbeatSeconds) * 1000 : deps.heartbeatMs;

  let position = req.afterPosition ?? (await deps.reader.head(tenantId, signal));
  let lastSent = Date.now();
  for (;;) {
    const page = await deps.reader.readAfter(tenantId, position, deps.batchSize, signal);
    for (const r of page) {
      position = r.sequence;
      if (matches(r)) {
        yield eventItem(r);
        lastSent = Date.now();
      }
    }
    if (page.length < deps.batchSize) break;
    if (Date.now() - lastSent >= heartbeatMs) {
      yield heartbeatItem(position);
      lastSent = Date.now();
    }
  }

  const sub = await deps.feed.subscribe(tenantId, position, matches);
  try {
    // Tells the client where it stands before anything matches.
    const start = sub.idlePosition();
    if (start !== null) yield heartbeatItem(start);
    lastSent = Date.now();
    for (;;) {
      const r = sub.next();
      if (r) {
        yield eventItem(r);
        lastSent = Date.now();
        continue;
      }
      if (sub.failure) throw sub.failure;
      const wait = heartbeatMs - (Date.now() - lastSent);
      if (wait <= 0) {
        const at = sub.idlePosition();
        if (at !== null) yield heartbeatItem(at);
        lastSent = Date.now();
        continue;
      }
      await readyOrTimeout(sub, wait, signal);
      signal.throwIfAborted();
    }
  } finally {
    deps.feed.unsubscribe(sub);
  }
}

function readyOrTimeout(sub: TailSubscriber, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      sub.onReady = null;
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    sub.onReady = done;
    signal.addEventListener("abort", done, { once: true });
  });
}
