import { create, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import {
  BrokenLinkSchema,
  EventFilterSchema,
  GetEventRequestSchema,
  GetEventResponseSchema,
  type QueryService,
  SearchEventsRequestSchema,
  SearchEventsResponseSchema,
  GetIndexStatusResponseSchema,
  IndexRefusalSchema,
  ReconcileReportSchema,
  VerifyChainRequestSchema,
  VerifyChainResponseSchema,
} from "../../gen/auditlog/v1/query_pb.js";
import { storedEventFromRecord } from "../domain/event-record.ts";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { SearchBackend } from "../search/backend.ts";
import { awaitPosition, directionOf, exportEvents, getStats, queryOf } from "./export-service.ts";
import { ChainVerifier, type ChainBreak, GENESIS_HASH } from "../domain/hash-chain.ts";
import { decodePageToken, encodePageToken, PageTokenError, queryFingerprint } from "../domain/page-token.ts";
import type { EventReader } from "../store/event-reader.ts";
import { tenantOf, validateRequest } from "./request-context.ts";
import type { TenantReadLimiter } from "./tenant-read-limiter.ts";

function missing(sequence: bigint): ChainBreak {
  return { sequence, eventId: "", reason: `event at sequence ${sequence} is missing`, expectedHash: "", storedHash: "" };
}

export type QueryDeps = {
  validator: Validator;
  reader: EventReader;
  backend: SearchBackend;
  /** Bounds a tenant's concurrent expensive reads (free-text search, export, stats); none: unbounded. */
  limiter?: TenantReadLimiter;
};

const DEFAULT_PAGE_SIZE = 100;
const MAX_SEQUENCE = 2n ** 63n - 1n;

export function queryService(deps: QueryDeps): ServiceImpl<typeof QueryService> {
  const { validator, reader, backend, limiter } = deps;
  return {
    async getEvent(req, ctx) {
      const tenantId = tenantOf(ctx);
      validateRequest(validator, GetEventRequestSchema, req);
      const r = await reader.getEvent(tenantId, req.id, ctx.signal);
      if (!r) throw new ConnectError(`no event with id "${req.id}"`, Code.NotFound);
      return create(GetEventResponseSchema, { event: storedEventFromRecord(r) });
    },

    async searchEvents(req, ctx) {
      const tenantId = tenantOf(ctx);
      validateRequest(validator, SearchEventsRequestSchema, req);
      const q = queryOf(req.filter);
      const direction = directionOf(req.order);
      const fingerprint = queryFingerprint(tenantId, {
        filter: toJsonString(EventFilterSchema, req.filter ?? create(EventFilterSchema)),
        direction,
      });
      let after = null;
      if (req.pageToken) {
        try {
          after = decodePageToken(req.pageToken, fingerprint);
        } catch (err) {
          if (err instanceof PageTokenError) throw new ConnectError(`page_token: ${err.message}`, Code.InvalidArgument);
          throw err;
        }
      }
      await awaitPosition(backend, tenantId, req.minPosition);
      const pageSize = req.pageSize || DEFAULT_PAGE_SIZE;
      const run = () => backend.search(tenantId, q, direction, after, pageSize + 1, req.includeTotal, ctx.signal);
      // Free text scans the content of every candidate event: the expensive kind of search.
      const expensive = limiter && q.conditions.some((c) => c.kind === "text");
      const page = expensive ? await limiter.run(tenantId, ctx.signal, run) : await run();
      const records = page.records.slice(0, pageSize);
      const last = records.at(-1);
      return create(SearchEventsResponseSchema, {
        events: records.map(storedEventFromRecord),
        nextPageToken:
          page.records.length > pageSize && last
            ? encodePageToken(fingerprint, { occurredAt: last.occurredAt, sequence: last.sequence })
            : "",
        total: page.total ?? 0n,
        totalIsLowerBound: page.totalIsLowerBound,
      });
    },

    exportEvents: exportEvents({ validator, backend, limiter }),
    getStats: getStats({ validator, backend, limiter }),

    async getIndexStatus(req, ctx) {
      const tenantId = tenantOf(ctx);
      const s = await backend.indexStatus(tenantId);
      return create(GetIndexStatusResponseSchema, {
        backend: s.backend,
        committedPosition: s.committedPosition,
        indexedPosition: s.indexedPosition,
        lagEvents: s.lagEvents,
        lagSeconds: s.lagSeconds,
        lastReconcile: s.lastReconcile
          ? create(ReconcileReportSchema, { ...s.lastReconcile, finishedAt: timestampFromDate(s.lastReconcile.finishedAt) })
          : undefined,
        refusedDocuments: s.refusedDocuments ?? 0n,
        recentRefusals: (s.recentRefusals ?? []).map((f) =>
          create(IndexRefusalSchema, { sequence: f.sequence, eventId: f.eventId, reason: f.reason, refusedAt: timestampFromDate(f.refusedAt) })),
      });
    },

    async verifyChain(req, ctx) {
      const tenantId = tenantOf(ctx);
      validateRequest(validator, VerifyChainRequestSchema, req);
      // Sequences are PostgreSQL bigints; a larger to_sequence just means "to the head".
      if (req.fromSequence > MAX_SEQUENCE) {
        throw new ConnectError(`from_sequence: must be at most ${MAX_SEQUENCE}`, Code.InvalidArgument);
      }
      const from = req.fromSequence > 1n ? req.fromSequence : 1n;
      const to = req.toSequence > 0n ? req.toSequence : null;
      if (to !== null && to < from) {
        throw new ConnectError("to_sequence: must not be below from_sequence", Code.InvalidArgument);
      }
      let verifier = new ChainVerifier(from, GENESIS_HASH);
      let broken: ChainBreak | null = null;
      let end = from - 1n;
      await reader.walkChain(tenantId, from, to, (prevHash, last) => {
        end = last;
        verifier = new ChainVerifier(from, prevHash ?? GENESIS_HASH);
        if (from > 1n && prevHash === null && from <= last + 1n) {
          broken = missing(from - 1n);
          return () => false;
        }
        return (r) => {
          broken = verifier.next(r);
          return broken === null;
        };
      }, ctx.signal);
      broken ??= verifier.finish(end);
      const b = broken as ChainBreak | null;
      return create(VerifyChainResponseSchema, {
        ok: b === null,
        checked: verifier.checked,
        fromSequence: from,
        toSequence: end < from ? from - 1n : end,
        headHash: b === null ? verifier.lastHash : "",
        broken: b ? create(BrokenLinkSchema, b) : undefined,
      });
    },
  };
}
