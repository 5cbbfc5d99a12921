import { create, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import {
  BrokenLinkSchema,
  EventFilterSchema,
  ExportEventsResponseSchema,
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
import { type DataProtection, viewOf } from "./data-protection.ts";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { SearchBackend } from "../search/backend.ts";
import { ChainRangeError, chainRange, RangeVerification, withArchivedPart } from "../domain/chain-verification.ts";
import type { ArchiveAnchor, ArchivedChainVerdict } from "../domain/archive-chain.ts";
import { decodePageToken, encodePageToken, queryFingerprint } from "../domain/page-token.ts";
import { directionOf, queryOf } from "./event-filter.ts";
import { boundedExportChunks, exportPlan } from "./export-stream.ts";
import { awaitPosition } from "./read-your-writes.ts";
import { tenantStats } from "./stats.ts";
import type { EventReader } from "../store/event-reader.ts";
import { ownActorOf, principalOf, tenantOf, tenantOfPrincipal, validateRequest } from "./request-context.ts";
import { restrictToActor } from "../domain/event-query.ts";
import type { TenantReadLimiter } from "./tenant-read-limiter.ts";
import { isBinaryCodec, type TailDeps, tailStream } from "./tail/tail-stream.ts";
import { type CheckpointDeps, checkpointHandlers } from "./checkpoints.ts";

export type QueryDeps = {
  validator: Validator;
  reader: EventReader;
  backend: SearchBackend;
  /** Bounds a tenant's concurrent expensive reads (free-text search, export, stats); none: unbounded. */
  limiter?: TenantReadLimiter;
  /** The live tail (TailEvents); none: UNIMPLEMENTED. */
  tail?: Omit<TailDeps, "validator" | "reader">;
  /** Signed checkpoints and export manifests; none: those answer FAILED_PRECONDITION. */
  checkpoints?: CheckpointDeps;
  /** Decrypts protected content for the callers allowed to see it; none: records as stored. */
  protection?: Pick<DataProtection, "viewFor">;
  /** VerifyChain's archived part (include_archives) from the archive bucket; none: no archive is configured. */
  archivedChain?: (tenantId: string, anchor: ArchiveAnchor, upTo: bigint) => Promise<ArchivedChainVerdict>;
};

const DEFAULT_PAGE_SIZE = 100;

export function queryService(deps: QueryDeps): ServiceImpl<typeof QueryService> {
  const { validator, reader, backend, limiter, tail, checkpoints } = deps;
  return {
    ...checkpointHandlers(checkpoints, validator),
    async getEvent(req, ctx) {
      const principal = principalOf(ctx);
      const tenantId = tenantOfPrincipal(principal);
      const actorId = ownActorOf(principal);
      validateRequest(validator, GetEventRequestSchema, req);
      const r = await reader.getEvent(tenantId, req.id, ctx.signal, actorId ?? undefined);
      // Another actor's event is NOT_FOUND for a User, as if it did not exist.
      if (!r || (actorId !== null && r.actor.id !== actorId)) throw new ConnectError(`no event with id "${req.id}"`, Code.NotFound);
      const [shown] = await viewOf(deps.protection, principal, tenantId)([r]);
      return create(GetEventResponseSchema, { event: storedEventFromRecord(shown!) });
    },

    async searchEvents(req, ctx) {
      const principal = principalOf(ctx);
      const tenantId = tenantOfPrincipal(principal);
      const actorId = ownActorOf(principal);
      validateRequest(validator, SearchEventsRequestSchema, req);
      const q = restrictToActor(queryOf(req.filter), actorId);
      const direction = directionOf(req.order);
      const fingerprint = queryFingerprint(tenantId, {
        filter: toJsonString(EventFilterSchema, req.filter ?? create(EventFilterSchema)),
        direction,
        // Only when restricted, so that the tokens of unrestricted callers stay as they were.
        ...(actorId !== null ? { actor: actorId } : {}),
      });
      const after = req.pageToken ? decodePageToken(req.pageToken, fingerprint) : null;
      await awaitPosition(backend, tenantId, req.minPosition, ctx.signal);
      const pageSize = req.pageSize || DEFAULT_PAGE_SIZE;
      const run = () => backend.search(tenantId, q, direction, after, pageSize + 1, req.includeTotal, ctx.signal);
      // Free text scans the content of every candidate event: the expensive kind of search.
      const expensive = limiter && q.conditions.some((c) => c.kind === "text");
      const page = expensive ? await limiter.run(tenantId, ctx.signal, run) : await run();
      const records = page.records.slice(0, pageSize);
      const last = records.at(-1);
      const shown = await viewOf(deps.protection, principal, tenantId)(records);
      return create(SearchEventsResponseSchema, {
        events: shown.map(storedEventFromRecord),
        nextPageToken:
          page.records.length > pageSize && last
            ? encodePageToken(fingerprint, { occurredAt: last.occurredAt, sequence: last.sequence })
            : "",
        total: page.total ?? 0n,
        totalIsLowerBound: page.totalIsLowerBound,
      });
    },

    async *exportEvents(req, ctx) {
      const principal = principalOf(ctx);
      const tenantId = tenantOfPrincipal(principal);
      const plan = exportPlan(validator, tenantId, req, ownActorOf(principal));
      await awaitPosition(backend, tenantId, req.minPosition, ctx.signal);
      const view = viewOf(deps.protection, principal, tenantId);
      // Each message is encoded before the next chunk is asked for (Connect's serializing stage pulls one at a time).
      const use = { consumedOnNext: true };
      for await (const chunk of boundedExportChunks(backend, plan, ctx.signal, limiter, checkpoints?.key ?? null, view, use)) {
        yield create(ExportEventsResponseSchema, { chunk });
      }
    },

    getStats(req, ctx) {
      const principal = principalOf(ctx);
      return tenantStats({ validator, backend, limiter }, tenantOfPrincipal(principal), req, ctx.signal, ownActorOf(principal));
    },

    async getIndexStatus(_req, ctx) {
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
          create(IndexRefusalSchema, {
            sequence: f.sequence,
            eventId: f.eventId,
            reason: f.reason,
            refusedAt: timestampFromDate(f.refusedAt),
          }),
        ),
      });
    },

    // The stream itself, not a generator around it: every message passes
    // through each generator layer, and a tail sends many messages.
    tailEvents(req, ctx) {
      const principal = principalOf(ctx);
      const tenantId = tenantOfPrincipal(principal);
      if (!tail) throw new ConnectError("the live tail is not enabled on this server", Code.Unimplemented);
      const binary = isBinaryCodec(ctx.requestHeader.get("content-type"));
      const view = viewOf(deps.protection, principal, tenantId);
      return tailStream({ ...tail, validator, reader }, { tenantId, actorId: ownActorOf(principal), binary, view }, req, ctx.signal);
    },

    async verifyChain(req, ctx) {
      const tenantId = tenantOf(ctx);
      validateRequest(validator, VerifyChainRequestSchema, req);
      if (req.includeArchives && req.fromSequence > 1n) {
        throw new ChainRangeError("from_sequence", "must be 0 or 1 with include_archives: the whole chain is verified from its start");
      }
      const verification = new RangeVerification(chainRange(req.fromSequence, req.toSequence));
      await reader.walkChain(tenantId, verification.range.from, verification.range.to, verification.start, ctx.signal);
      let v = verification.verdict();
      const anchor = verification.anchor;
      if (req.includeArchives && anchor) {
        if (!deps.archivedChain) {
          throw new ConnectError(
            "include_archives: events were archived but no archive bucket is configured (AUDITLOG_ARCHIVE_S3_BUCKET)",
            Code.FailedPrecondition,
          );
        }
        const to = verification.range.to;
        const upTo = to !== null && to < anchor.sequence ? to : anchor.sequence;
        v = withArchivedPart(v, await deps.archivedChain(tenantId, anchor, upTo), anchor, upTo);
      }
      return create(VerifyChainResponseSchema, { ...v, broken: v.broken ? create(BrokenLinkSchema, v.broken) : undefined });
    },
  };
}
