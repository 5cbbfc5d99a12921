import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import type { Event } from "../../gen/auditlog/v1/event_pb.js";
import type { EventWire } from "../../gen/auditlog/internal/v1/ingest_wire_pb.js";
import { AppendResponseSchema, type IngestRequest, IngestResponseSchema, type IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { type EventRecord, recordFromEvent } from "../domain/event-record.ts";
import { validateEvent } from "../domain/event-validation.ts";
import { eventFromWire, isEventWire, OpenContentDecodeError } from "../domain/event-wire.ts";
import { sealContent } from "../domain/hash-chain.ts";
import { ClosedError, type GroupCommitter } from "../store/group-commit.ts";
import { UnknownTenantError, type WriteItem, type WriteResult } from "../store/event-writer.ts";
import { principalOf, tenantOf } from "./request-context.ts";
import { limitSubjectOf } from "./limit-subject.ts";
import { SummaryBuilder } from "./ingest-summary.ts";
import type { Logger } from "../platform/log.ts";
import { isStorageUnavailable } from "../platform/storage-errors.ts";
import { endSpanWithError, tracer, withActiveSpan, withSpan } from "../platform/tracing.ts";
import { TimeSlice } from "../platform/time-slice.ts";
import { fieldError, retryableError } from "../platform/error-details.ts";
import { connectErrorOf, RETRY_DELAY_MS } from "./errors.ts";
import { type RateLimiter, RateLimitError } from "./rate-limiter.ts";

export type IngestDeps = {
  validator: Validator;
  committer: GroupCommitter<WriteItem, WriteResult>;
  log: Logger;
  /** Events per second per tenant and per key; none: no limit. */
  limiter?: RateLimiter;
  /** How long an Ingest stream's message may wait for its tenant's and key's rates before RESOURCE_EXHAUSTED. */
  limitWaitMs?: number;
  /**
   * Data protection of the tenant's events (masking, encryption at rest),
   * applied to each record before it is hashed: the chain covers what is
   * stored (docs/ARCHITECTURE.md, "Data protection"). None: stored as sent.
   */
  protect?: (tenantId: string) => Promise<(record: EventRecord) => EventRecord>;
};

const DEFAULT_LIMIT_WAIT_MS = 2_000;

const MAX_EVENTS_PER_MESSAGE = 1000;

/**
 * An event of a request: as the contract's Event (JSON requests, AMQP) or
 * with its open content still encoded (binary requests, read with
 * auditlog.internal.v1's wire types; src/server/binary-twin.ts).
 */
export type IncomingEvent = Event | EventWire;

/** Depth of an event in an AppendRequest or IngestRequest, as protobuf-es counts it for its recursion limit. */
const EVENT_DEPTH_IN_REQUEST = 2;

/** The Event of the `index`th event of a message; open content that does not decode refuses the whole message, as protobuf-es would. */
function eventOf(e: IncomingEvent, index: number): Event {
  if (!isEventWire(e)) return e;
  try {
    return eventFromWire(e, EVENT_DEPTH_IN_REQUEST);
  } catch (err) {
    if (err instanceof OpenContentDecodeError) throw fieldError(`events[${index}].${err.field}`, err.message);
    throw err;
  }
}

function checkBatchSize(events: readonly IncomingEvent[]): void {
  if (events.length === 0 || events.length > MAX_EVENTS_PER_MESSAGE) {
    throw fieldError("events", `${events.length} events in one message; send 1 to ${MAX_EVENTS_PER_MESSAGE}`);
  }
}

/**
 * Failures of the write path are retryable for the client (nothing of the
 * failed batch was committed), except when the caller's own tenant does not
 * exist: no retry can succeed, and saying "retry" would loop forever.
 */
function writeFailure(err: unknown, tenantId: string, log: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ClosedError || err instanceof RateLimitError) return connectErrorOf(err)!;
  if (err instanceof UnknownTenantError) {
    log.warn("write failed: unknown tenant", { tenantId: err.tenantId });
    if (err.tenantId === tenantId) return connectErrorOf(err)!;
    // A batch is shared by callers of several tenants; another's is gone.
    return retryableError(
      "the write was refused as a whole and nothing was stored; retry with the same event ids",
      Code.Unavailable,
      RETRY_DELAY_MS.unavailable,
      err,
    );
  }
  // Expected while PostgreSQL restarts: a warning, not an error, in the logs.
  if (isStorageUnavailable(err)) log.warn("write failed: storage unavailable", { err: String(err) });
  else log.error("write failed", { err: String(err) });
  return retryableError("storage is unavailable; retry with the same event ids", Code.Unavailable, RETRY_DELAY_MS.unavailable, err);
}

/**
 * Validates one message's events, submits the valid ones for group commit (the
 * RPCs and the AMQP consumer alike: src/services/amqp/ingest-consumer.ts)
 * (waiting for room: backpressure) and returns the promise of their commit.
 */
export async function submitEvents(
  deps: IngestDeps,
  tenantId: string,
  events: IncomingEvent[],
  firstIndex: number,
  summary: SummaryBuilder,
  signal: AbortSignal,
): Promise<{ committed: Promise<void> }> {
  const items: WriteItem[] = [];
  const indexes: number[] = [];
  const protect = deps.protect ? await deps.protect(tenantId) : undefined;
  await withSpan("validate", async (span) => {
    span.setAttribute("auditlog.events", events.length);
    // Validating and sealing 1,000 events takes 10-80 ms: in slices, so other tenants' requests go on meanwhile.
    const slice = new TimeSlice();
    for (let i = 0; i < events.length; i++) {
      if (slice.due) await slice.yield();
      const e = eventOf(events[i]!, i);
      // In place: the wire event's views of the request's bytes would keep
      // the whole body alive until the commit.
      events[i] = e;
      const violations = validateEvent(deps.validator, e);
      if (violations.length) {
        summary.reject(firstIndex + i, e.id, violations);
        continue;
      }
      const record = protect ? protect(recordFromEvent(e)) : recordFromEvent(e);
      items.push({ tenantId, record, ...sealContent(record) });
      indexes.push(firstIndex + i);
    }
    span.setAttribute("auditlog.events.rejected", events.length - items.length);
  });
  if (items.length === 0) return { committed: Promise.resolve() };
  // This caller's share of group commit: waiting for room, the batch's
  // transaction (a span of its own, linked to this one) and the result.
  const span = tracer.startSpan("commit", { attributes: { "auditlog.events": items.length } });
  let committed: Promise<WriteResult[]>;
  try {
    ({ committed } = await withActiveSpan(span, () => deps.committer.submit(items, signal)));
  } catch (err) {
    endSpanWithError(span, err);
    throw err;
  }
  const recorded = committed.then(
    (results) => {
      span.end();
      for (const [i, r] of results.entries()) summary.record(indexes[i]!, items[i]!.record.id, r);
    },
    (err: unknown) => {
      endSpanWithError(span, err);
      throw err;
    },
  );
  // A stream awaits its commits only after its last message; a commit that
  // fails before then must not count as an unhandled rejection (which would
  // end the process). The failure is still reported: the caller settles
  // every commit and fails the call with it.
  recorded.catch(() => {});
  return { committed: recorded };
}

async function settleAll(commits: Promise<void>[], tenantId: string, log: Logger): Promise<void> {
  const settled = await Promise.allSettled(commits);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw writeFailure((failed as PromiseRejectedResult).reason, tenantId, log);
}

export function ingestService(deps: IngestDeps): ServiceImpl<typeof IngestService> {
  return {
    async ingest(requests: AsyncIterable<IngestRequest>, ctx: HandlerContext) {
      const tenantId = tenantOf(ctx);
      const subject = limitSubjectOf(principalOf(ctx));
      const summary = new SummaryBuilder();
      const commits: Promise<void>[] = [];
      let index = 0;
      try {
        for await (const req of requests) {
          checkBatchSize(req.events);
          if (subject) await deps.limiter?.admitWaiting(subject, req.events.length, deps.limitWaitMs ?? DEFAULT_LIMIT_WAIT_MS, ctx.signal);
          const first = index;
          index += req.events.length;
          commits.push((await submitEvents(deps, tenantId, req.events, first, summary, ctx.signal)).committed);
        }
      } catch (err) {
        // Let what was submitted finish (it may commit), then report the stream's error.
        await Promise.allSettled(commits);
        throw writeFailure(err, tenantId, deps.log);
      }
      await settleAll(commits, tenantId, deps.log);
      return create(IngestResponseSchema, { summary: summary.build() });
    },

    async append(req, ctx) {
      const tenantId = tenantOf(ctx);
      checkBatchSize(req.events);
      // Before validation: a tenant or key over its rate costs the event loop nothing more.
      const subject = limitSubjectOf(principalOf(ctx));
      if (subject) deps.limiter?.admit(subject, req.events.length);
      const summary = new SummaryBuilder();
      await settleAll([(await submitEvents(deps, tenantId, req.events, 0, summary, ctx.signal)).committed], tenantId, deps.log);
      const refused = summary.refusedError();
      if (refused) throw refused;
      return create(AppendResponseSchema, { summary: summary.build() });
    },
  };
}
