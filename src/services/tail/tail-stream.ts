// One TailEvents stream: catch up from the requested position with paged
// reads of its own (so a client far behind never drags the shared feed
// back), then join the replica's feed at the position it reached and send
// what the feed queues for it, with a heartbeat whenever it has been idle
// for the interval.
import type { Validator } from "@bufbuild/protovalidate";
import { type TailEventsRequest, TailEventsRequestSchema, type TailEventsResponse } from "../../../gen/auditlog/v1/query_pb.js";
import type { StoredRecord } from "../../domain/event-record.ts";
import { restrictToActor } from "../../domain/event-query.ts";
import { matchesQuery } from "../../domain/match-query.ts";
import type { TailSubscriber } from "../../domain/tail-subscribers.ts";
import { asStored, type RecordView } from "../data-protection.ts";
import { queryOf } from "../event-filter.ts";
import { validateRequest } from "../request-context.ts";
import type { TailFeed } from "./tail-feed.ts";
import { batchItem, eventItem, heartbeatItem } from "./tail-items.ts";

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

/** Whether the request (so the response) uses a binary codec: gRPC, gRPC-Web or Connect with +proto. */
export function isBinaryCodec(contentType: string | null): boolean {
  if (!contentType) return false;
  const t = contentType.split(";")[0]!.trim().toLowerCase();
  return t === "application/grpc" || t === "application/grpc-web" || t.endsWith("+proto") || t === "application/proto";
}

/**
 * Who tails: the tenant, for a User (tokens) the only actor whose events they
 * may see, and how they see records (decrypted or as stored; none: as stored).
 */
export type TailCaller = { tenantId: string; actorId: string | null; binary: boolean; view?: RecordView };

// The feed's records decrypted once for all the subscribers allowed to see
// them (any such caller of the tenant gets the same clear text), so that they
// also share one encoded item (eventItem).
const decrypted = new WeakMap<StoredRecord, StoredRecord>();

async function shown(r: StoredRecord, view: RecordView): Promise<StoredRecord> {
  if (view === asStored) return r;
  let d = decrypted.get(r);
  if (!d) {
    [d] = await view([r]);
    decrypted.set(r, d!);
  }
  return d!;
}

export async function* tailStream(
  deps: TailDeps,
  caller: TailCaller,
  req: TailEventsRequest,
  signal: AbortSignal,
): AsyncGenerator<TailEventsResponse> {
  const { tenantId, binary } = caller;
  const view = caller.view ?? asStored;
  validateRequest(deps.validator, TailEventsRequestSchema, req);
  // The feed reads every event of the tenant once for all its subscribers;
  // a User's restriction is part of their matcher.
  const q = restrictToActor(queryOf(req.filter), caller.actorId);
  const matches = (r: StoredRecord) => matchesQuery(r, q);
  const heartbeatMs = req.heartbeatSeconds ? Math.max(1, req.heartbeatSeconds) * 1000 : deps.heartbeatMs;
  const maxBatch = Math.max(1, req.maxBatch);
  const item = (rs: readonly StoredRecord[]) => (maxBatch === 1 ? eventItem(rs[0]!, binary) : batchItem(rs, binary));

  let position = req.afterPosition ?? (await deps.reader.head(tenantId, signal));
  let lastSent = Date.now();
  for (;;) {
    const page = await deps.reader.readAfter(tenantId, position, deps.batchSize, signal);
    // Matched as stored, like the feed and SearchEvents: encrypted parts are not searchable.
    const shownPage = await view(page.filter(matches));
    for (let i = 0; i < shownPage.length; i += maxBatch) {
      yield item(shownPage.slice(i, i + maxBatch));
      lastSent = Date.now();
    }
    position = page.at(-1)?.sequence ?? position;
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
      // What is ready, up to max_batch: the position a client resumes from
      // is the last event of the last message, so a batch is taken whole.
      const ready: StoredRecord[] = [];
      for (let r = sub.next(); r; r = ready.length < maxBatch ? sub.next() : undefined) ready.push(await shown(r, view));
      if (ready.length > 0) {
        yield item(ready);
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
  if (signal.aborted) return Promise.resolve();
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
