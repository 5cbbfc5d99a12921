// The tenant lifecycle half of AdminService: update, suspend, resume, and
// deletion in two steps (docs/ARCHITECTURE.md, "Tenant lifecycle"). All are
// the operator's. A deletion is never one call: the tenant must be suspended,
// RequestTenantDeletion hands out a confirmation token (only its hash is
// kept) valid for DELETION_CONFIRM_MS, and DeleteTenant must present it.
// Nothing of the tenant is left in PostgreSQL; its archive objects go once
// the confirmation is accepted, before its rows (in the same transaction,
// so a deletion cut halfway is finished by calling it again), and its search
// documents after the commit. The deletion cannot be recorded in the
// tenant's own log (it is gone), so the operator's log lines are its record.
import { randomBytes } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type AdminService,
  DeleteTenantRequestSchema,
  RequestTenantDeletionRequestSchema,
  ResumeTenantRequestSchema,
  SuspendTenantRequestSchema,
  type Tenant,
  TenantSchema,
  UpdateTenantRequestSchema,
} from "../../gen/auditlog/v1/admin_pb.js";
import type { TenantStatus } from "../auth/tenant-status.ts";
import { hashSecret } from "../domain/api-key-secret.ts";
import type { Logger } from "../platform/log.ts";
import type { TenantRow, TenantStore } from "../store/tenant-store.ts";
import { accessTenantKey } from "./access-audit.ts";
import { principalOf, validateRequest } from "./request-context.ts";

/** How long a deletion confirmation token is accepted. */
export const DELETION_CONFIRM_MS = 10 * 60 * 1000;

export type TenantLifecycleDeps = {
  validator: Validator;
  tenants: TenantStore;
  /** Forgotten on suspend, resume and delete, so the change holds at once on this replica. */
  tenantStatus?: TenantStatus;
  /** Deletes the tenant's search documents; resolves with how many (none without a search index). */
  deleteSearchDocuments?: (tenantId: string) => Promise<number>;
  /** The archive bucket's part in a deletion (src/lifecycle/tenant-archive.ts); none without a bucket. */
  tenantArchive?: {
    exclusive<T>(fn: () => Promise<T>): Promise<T>;
    deleteObjects(tenantId: string): Promise<number>;
  };
  /** The operator's record of lifecycle changes; the deletion's only record. */
  log?: Logger;
};

type LifecycleMethods = Pick<
  ServiceImpl<typeof AdminService>,
  "updateTenant" | "suspendTenant" | "resumeTenant" | "requestTenantDeletion" | "deleteTenant"
>;

export function toTenant(t: TenantRow): Tenant {
  const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);
  return create(TenantSchema, {
    id: t.id,
    name: t.name,
    createdAt: timestampFromDate(t.created_at),
    settings: t.settings,
    updatedAt: ts(t.updated_at),
    suspendedAt: ts(t.suspended_at),
    deletionExpiresAt: ts(t.deletion_expires_at),
  });
}

function requireOperator(ctx: HandlerContext, tenantId: string): void {
  if (principalOf(ctx).kind !== "operator") {
    throw new ConnectError("only the operator (bootstrap) key can change a tenant's lifecycle", Code.PermissionDenied);
  }
  // The access audit records the call in this tenant's log.
  ctx.values.set(accessTenantKey, tenantId);
}

export function tenantLifecycle(deps: TenantLifecycleDeps): LifecycleMethods {
  const { validator, tenants, tenantStatus, log } = deps;
  return {
    async updateTenant(req, ctx) {
      requireOperator(ctx, req.tenantId);
      validateRequest(validator, UpdateTenantRequestSchema, req);
      const row = await tenants.update(req.tenantId, { name: req.name, settings: req.settings as JsonObject | undefined });
      return { tenant: toTenant(row) };
    },

    async suspendTenant(req, ctx) {
      requireOperator(ctx, req.tenantId);
      validateRequest(validator, SuspendTenantRequestSchema, req);
      const row = await tenants.setSuspended(req.tenantId, true);
      tenantStatus?.forget(req.tenantId);
      log?.info("tenant suspended", { tenantId: req.tenantId });
      return { tenant: toTenant(row) };
    },

    async resumeTenant(req, ctx) {
      requireOperator(ctx, req.tenantId);
      validateRequest(validator, ResumeTenantRequestSchema, req);
      const row = await tenants.setSuspended(req.tenantId, false);
      tenantStatus?.forget(req.tenantId);
      log?.info("tenant resumed", { tenantId: req.tenantId });
      return { tenant: toTenant(row) };
    },

    async requestTenantDeletion(req, ctx) {
      requireOperator(ctx, req.tenantId);
      validateRequest(validator, RequestTenantDeletionRequestSchema, req);
      const token = `del_${randomBytes(24).toString("base64url")}`;
      const expiresAt = new Date(Date.now() + DELETION_CONFIRM_MS);
      const row = await tenants.requestDeletion(req.tenantId, hashSecret(token), expiresAt);
      log?.warn("tenant deletion requested", { tenantId: req.tenantId, expiresAt: expiresAt.toISOString() });
      return { tenant: toTenant(row), confirmationToken: token, expiresAt: timestampFromDate(expiresAt) };
    },

    async deleteTenant(req, ctx) {
      requireOperator(ctx, req.tenantId);
      validateRequest(validator, DeleteTenantRequestSchema, req);
      const archive = deps.tenantArchive;
      let deletedArchiveObjects = 0;
      // Recorded as soon as the objects are gone: if the rows then fail to go, the record stands and a new call finishes.
      const deleteArchive = async () => {
        deletedArchiveObjects = await archive!.deleteObjects(req.tenantId);
        log?.warn("tenant's archive objects deleted", { tenantId: req.tenantId, deletedArchiveObjects });
      };
      const deleteRows = () =>
        tenants.delete(req.tenantId, hashSecret(req.confirmationToken), undefined, archive ? deleteArchive : undefined);
      // No retention round may archive the tenant's rows between the deletion of its objects and that of its rows.
      const deletedRows = archive ? await archive.exclusive(deleteRows) : await deleteRows();
      tenantStatus?.forget(req.tenantId);
      // Nothing can be recorded in a log that no longer exists.
      ctx.values.set(accessTenantKey, "");
      // The tenant's record of its own end: the operator's log.
      log?.warn("tenant deleted", { tenantId: req.tenantId, deletedRows, deletedArchiveObjects });
      let deletedDocuments = 0;
      if (deps.deleteSearchDocuments) {
        try {
          deletedDocuments = await deps.deleteSearchDocuments(req.tenantId);
          log?.info("tenant's search documents deleted", { tenantId: req.tenantId, deletedDocuments });
        } catch (err) {
          // PostgreSQL, the system of record, has nothing left; say so, and that the index does.
          log?.error("tenant deleted, but deleting its search documents failed; they stay until deleted again", {
            tenantId: req.tenantId,
            err: String(err),
          });
          throw new ConnectError(
            `tenant "${req.tenantId}" was deleted, but its search documents could not all be removed: ${String(err)}`,
            Code.Unavailable,
          );
        }
      }
      return {
        tenantId: req.tenantId,
        deletedRows: Object.fromEntries(Object.entries(deletedRows).map(([k, v]) => [k, BigInt(v)])),
        deletedDocuments: BigInt(deletedDocuments),
        deletedArchiveObjects: BigInt(deletedArchiveObjects),
      };
    },
  };
}
