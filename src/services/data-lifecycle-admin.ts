// AdminService's data lifecycle calls: retention policies and erasure
// (docs/ARCHITECTURE.md, "Data lifecycle").
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type AdminService,
  EraseSubjectRequestSchema,
  GetRetentionPolicyRequestSchema,
  RestoreArchiveRequestSchema,
  RetentionPolicySchema,
  SetRetentionPolicyRequestSchema,
} from "../../gen/auditlog/v1/admin_pb.js";
import { erasureSubject, subjectField, subjectHash } from "../domain/erasure.ts";
import type { EventRecord } from "../domain/event-record.ts";
import { sealContent } from "../domain/hash-chain.ts";
import { checkPolicy, RetentionPolicyError } from "../domain/retention.ts";
import { microsFromDate } from "../domain/timestamp.ts";
import { uuidv7 } from "../domain/uuidv7.ts";
import { fieldError } from "../platform/error-details.ts";
import type { Erasure } from "../lifecycle/erasure.ts";
import { type ArchiveRestore, RestoreUnavailableError } from "../lifecycle/restore.ts";
import type { RetentionStore } from "../store/retention-store.ts";
import { TenantNotFoundError, type TenantStore } from "../store/tenant-store.ts";
import { actorOf, type SubmitToCommit } from "./access-audit.ts";
import { principalOf, validateRequest } from "./request-context.ts";

export type DataLifecycleAdminDeps = {
  validator: Validator;
  tenants: Pick<TenantStore, "exists">;
  retention: RetentionStore;
  erasure: Erasure;
  restore: ArchiveRestore;
  /** Is an archive bucket configured? Without one, keep_days is refused. */
  archiveConfigured: boolean;
  /** The group commit, to record the erasure in the tenant's log. */
  submit: SubmitToCommit;
};

type Impl = Pick<ServiceImpl<typeof AdminService>, "getRetentionPolicy" | "setRetentionPolicy" | "eraseSubject" | "restoreArchive">;

export const ERASURE_ACTION = "auditlog.erasure";

/** Null deps (app.ts without the lifecycle wired, in-memory tests): every call answers UNIMPLEMENTED. */
export function dataLifecycleAdmin(
  deps: DataLifecycleAdminDeps | null,
  targetTenant: (ctx: HandlerContext, requested: string) => string,
): Impl {
  if (deps === null) {
    const off = (): never => {
      throw new ConnectError("the data lifecycle is not set up on this server", Code.Unimplemented);
    };
    return { getRetentionPolicy: off, setRetentionPolicy: off, eraseSubject: off, restoreArchive: off };
  }
  const { validator, tenants, retention } = deps;
  const existing = async (ctx: HandlerContext, requested: string) => {
    const tenantId = targetTenant(ctx, requested);
    if (!(await tenants.exists(tenantId))) throw new TenantNotFoundError(`no tenant "${tenantId}"`);
    return tenantId;
  };
  return {
    async getRetentionPolicy(req, ctx) {
      validateRequest(validator, GetRetentionPolicyRequestSchema, req);
      const tenantId = await existing(ctx, req.tenantId);
      const p = (await retention.policy(tenantId)) ?? { searchableDays: 0, keepDays: 0 };
      const anchor = await retention.anchor(tenantId);
      return {
        policy: create(RetentionPolicySchema, p),
        anchorSequence: anchor?.sequence ?? 0n,
        anchorHash: anchor?.hash ?? "",
      };
    },

    async setRetentionPolicy(req, ctx) {
      validateRequest(validator, SetRetentionPolicyRequestSchema, req);
      const tenantId = await existing(ctx, req.tenantId);
      const p = { searchableDays: req.policy?.searchableDays ?? 0, keepDays: req.policy?.keepDays ?? 0 };
      try {
        checkPolicy(p, deps.archiveConfigured);
      } catch (err) {
        if (!(err instanceof RetentionPolicyError)) throw err;
        if (err.field === "keep_days" && !deps.archiveConfigured && p.keepDays > 0) {
          throw new ConnectError(err.message, Code.FailedPrecondition);
        }
        throw fieldError(`policy.${err.field}`, err.message.slice(err.field.length + 2));
      }
      if (!(await retention.setPolicy(tenantId, p))) throw new TenantNotFoundError(`no tenant "${tenantId}"`);
      return { policy: create(RetentionPolicySchema, p) };
    },

    async eraseSubject(req, ctx) {
      validateRequest(validator, EraseSubjectRequestSchema, req);
      const tenantId = await existing(ctx, req.tenantId);
      const erasing = erasureSubject(req.field, req.value);
      const field = subjectField(erasing);
      const erasureId = uuidv7();
      const subject = subjectHash(erasureId, field, req.value);
      const counts = await deps.erasure.erase(tenantId, erasing);
      const now = new Date();
      const record: EventRecord = {
        id: erasureId,
        occurredAt: microsFromDate(now),
        action: ERASURE_ACTION,
        actor: { ...actorOf(principalOf(ctx)), ip: "", userAgent: "" },
        target: { type: "auditlog.subject", id: subject, name: "" },
        outcome: "SUCCESS",
        severity: "INFO",
        context: { requestId: "", traceId: "", source: "auditlog", location: "" },
        changes: null,
        metadata: { erasure_id: erasureId, field, subject_hash: subject, events: counts.events, archives: counts.archives },
        message: `erased ${counts.events} event${counts.events === 1 ? "" : "s"} and rewrote ${counts.archives} archive object${counts.archives === 1 ? "" : "s"}`,
      };
      const { committed } = await deps.submit([{ tenantId, record, ...sealContent(record) }]);
      const [result] = await committed;
      if (result?.status !== "accepted")
        throw new ConnectError("the erasure was done but could not be recorded; retry it", Code.Unavailable);
      await retention.recordErasure(tenantId, erasureId, subject, field, counts);
      return {
        erasureId,
        eventsErased: BigInt(counts.events),
        archivesRewritten: BigInt(counts.archives),
        subjectHash: subject,
      };
    },

    async restoreArchive(req, ctx) {
      validateRequest(validator, RestoreArchiveRequestSchema, req);
      const tenantId = await existing(ctx, req.tenantId);
      const from = timestampDate(req.from!);
      const to = timestampDate(req.to!);
      if (to <= from) throw fieldError("to", "must be after from");
      const day = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
      const until = new Date(day + (req.days || 7) * 86_400_000);
      try {
        const r = await deps.restore.restore(tenantId, from, to, until);
        return { events: BigInt(r.events), archives: BigInt(r.archives), until: timestampFromDate(until) };
      } catch (err) {
        if (err instanceof RestoreUnavailableError) throw new ConnectError(err.message, Code.FailedPrecondition);
        throw err;
      }
    },
  };
}
