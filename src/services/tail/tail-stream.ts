// One TailEvents stream: catch up from the requested position with paged
// reads (shared with the other streams near it, tail-pages.ts, but apart
// from the feed, so a client far behind never drags the shared feed back),
// then join the replica's feed at the position it reached and send what the
// feed queues for it, with a heartbeat whenever it has been idle for the
// interval.
import type { Validator } from "@bufbuild/protovalidate";
import { type TailEventsRequest, TailEventsRequestSchema, type TailEventsResponse } from "../../../gen/auditlog/v1/query_pb.js";
import type { StoredRecord } from "../../domain/event-record.ts";
import { restrictToActor } from "../../domain/event-query.ts";
import { matchesQuery } from "../../domain/match-query.ts";
import { asStored, type RecordView } from "../data-protection.ts";
import { queryOf } from "../event-filter.ts";
import { validateRequest } from "../request-context.ts";
import type { TailFeed } from "./tail-feed.ts";
import { batchItem, eventItem, heartbeatItem } from "./tail-items.ts";

export type TailReader = {
  head(tenantId: string, signal?: AbortSignal): Promise<bigint>;
};

export type TailDeps = {
  validator: Validator;
  reader: TailReader;
  feed: TailFeed;
  /** Default heartbeat interval. */
  heartbeatMs: number;
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

async function shown(rs: StoredRecord[], view: RecordView): Promise<StoredRecord[]> {
  if (view === asStored) return rs;
  const missing = rs.filter((r) => !decrypted.has(r));
  if (missing.length > 0) {
    const clear = await view(missing);
    for (let i = 0; i < missing.length; i++) decrypted.set(missing[i]!, clear[i]!);
  }
  return rs.map((r) => decrypted.get(r)!);
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
    const page = await deps.feed.pages.after(tenantId, position, signal);
    // Matched as stored, like the feed and SearchEvents: encrypted parts are not searchable.
    const shownPage = await shown(page.records.filter(matches), view);
    for (let i = 0; i < shownPage.length; i += maxBatch) {
      yield item(shownPage.slice(i, i + maxBatch));
      lastSent = Date.now();
    }
    position = page.records.at(-1)?.sequence ?? position;
    if (!page.full) break;
    if (Date.now() - lastSent >= heartbeatMs) {
      yield heartbeatItem(position);
      lastSent = Date.now();
    }
  }

  const sub = await deps.feed.subscribe(tenantId, position, matches);
  // One waker for the life of the stream (not a listener per wait): an
  // event queued, the signal aborted, or the heartbeat interval passed.
  let wake: (() => void) | null = null;
  const ring = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  sub.onReady = ring;
  signal.addEventListener("abort", ring, { once: true });
  try {
    // Tells the client where it stands before anything matches.
    const start = sub.idlePosition();
    if (start !== null) yield heartbeatItem(start);
    lastSent = Date.now();
    for (;;) {
      signal.throwIfAborted();
      // What is ready, up to max_batch: the position a client resumes from
      // is the last event of the last message, so a batch is taken whole.
      const ready: StoredRecord[] = [];
      for (let r = sub.next(); r; r = ready.length < maxBatch ? sub.next() : undefined) ready.push(r);
      if (ready.length > 0) {
        yield item(await shown(ready, view));
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
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(ring, wait);
      });
      clearTimeout(timer);
    }
  } finally {
    signal.removeEventListener("abort", ring);
    sub.onReady = null;
    deps.feed.unsubscribe(sub);
  }
}
