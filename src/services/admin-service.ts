import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type AdminService,
  type ApiKey,
  ApiKeySchema,
  CreateApiKeyRequestSchema,
  CreateTenantRequestSchema,
  ListApiKeysRequestSchema,
  RevokeApiKeyRequestSchema,
  RotateApiKeyRequestSchema,
  Scope,
} from "../../gen/auditlog/v1/admin_pb.js";
import type { Authenticator } from "../auth/authenticator.ts";
import { type Principal, type ScopeName, TENANT_HEADER } from "../auth/principal.ts";
import { hashSecret, newKeyId, newSecret } from "../domain/api-key-secret.ts";
import { fieldError } from "../platform/error-details.ts";
import type { ApiKeyRow, ApiKeyStore } from "../store/api-key-store.ts";
import type { TenantStore } from "../store/tenant-store.ts";
import { accessTenantKey } from "./access-audit.ts";
import { type TenantLifecycleDeps, tenantLifecycle, toTenant } from "./tenant-lifecycle.ts";
import { principalOf, tenantOfPrincipal, validateRequest } from "./request-context.ts";
import { type DataProtectionAdminDeps, dataProtectionAdmin } from "./data-protection-admin.ts";
import { type DataLifecycleAdminDeps, dataLifecycleAdmin } from "./data-lifecycle-admin.ts";

export type AdminDeps = {
  validator: Validator;
  tenants: TenantStore;
  keys: ApiKeyStore;
  auth: Authenticator;
  /** Masking rules and data keys (GetMaskingRules, SetMaskingRules, RotateDataKey); none: UNIMPLEMENTED. */
  dataProtection?: Omit<DataProtectionAdminDeps, "validator" | "tenants">;
  /** Retention policies and erasure (GetRetentionPolicy, SetRetentionPolicy, EraseSubject); none: UNIMPLEMENTED. */
  dataLifecycle?: Omit<DataLifecycleAdminDeps, "validator" | "tenants">;
} & Partial<Pick<TenantLifecycleDeps, "tenantStatus" | "deleteSearchDocuments" | "tenantArchive" | "log">>;

const SCOPE_NAMES: Record<number, ScopeName> = { [Scope.INGEST]: "ingest", [Scope.QUERY]: "query", [Scope.ADMIN]: "admin" };
const SCOPE_VALUES: Record<string, Scope> = { ingest: Scope.INGEST, query: Scope.QUERY, admin: Scope.ADMIN };

function requireOperator(ctx: HandlerContext): void {
  if (principalOf(ctx).kind !== "operator") {
    throw new ConnectError("only the operator (bootstrap) key can manage tenants", Code.PermissionDenied);
  }
}

/**
 * The tenant a key call acts on: any for the operator, only its own for a
 * tenant admin key, one it grants for an Admin token (the request's
 * tenant_id, else the one the token chose: its only one or the header's).
 */
function targetTenant(ctx: HandlerContext, requested: string): string {
  const p = principalOf(ctx);
  if (p.kind === "operator") {
    if (!requested) throw fieldError("tenant_id", "required when using the bootstrap key");
    return requested;
  }
  if (p.kind === "token") {
    if (!requested) return tenantOfPrincipal(p);
    if (!p.tenants.includes(requested))
      throw new ConnectError(`tenant_id: the token does not grant tenant "${requested}"`, Code.PermissionDenied);
    if (p.tenantId !== null && p.tenantId !== requested) {
      throw fieldError("tenant_id", `"${requested}" is not the tenant the ${TENANT_HEADER} header names`);
    }
    return requested;
  }
  if (requested && requested !== p.tenantId) {
    throw new ConnectError("tenant_id: an API key can only manage keys of its own tenant", Code.PermissionDenied);
  }
  return p.tenantId;
}

/** May the caller manage the keys of `tenantId`? */
function managesTenant(p: Principal, tenantId: string): boolean {
  if (p.kind === "operator") return true;
  if (p.kind === "token") return p.tenants.includes(tenantId);
  return p.tenantId === tenantId;
}

function toApiKey(k: ApiKeyRow): ApiKey {
  const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);
  return create(ApiKeySchema, {
    id: k.id,
    tenantId: k.tenant_id,
    name: k.name,
    scopes: k.scopes.map((s) => SCOPE_VALUES[s]!),
    createdAt: ts(k.created_at),
    rotatedAt: ts(k.rotated_at),
    revokedAt: ts(k.revoked_at),
    expiresAt: ts(k.expires_at),
  });
}

export function adminService(deps: AdminDeps): ServiceImpl<typeof AdminService> {
  const { validator, tenants, keys, auth } = deps;

  /** Loads a key the caller may manage; NOT_FOUND also for other tenants' keys, so ids cannot be probed. */
  async function ownedKey(ctx: HandlerContext, keyId: string): Promise<ApiKeyRow> {
    const row = await keys.get(keyId);
    const p = principalOf(ctx);
    if (!row || !managesTenant(p, row.tenant_id)) {
      throw new ConnectError(`no API key with id "${keyId}"`, Code.NotFound);
    }
    // The access audit records the call in the key's tenant (the operator names no tenant).
    ctx.values.set(accessTenantKey, row.tenant_id);
    return row;
  }

  return {
    async createTenant(req, ctx) {
      requireOperator(ctx);
      validateRequest(validator, CreateTenantRequestSchema, req);
      // An existing id: TenantExistsError, ALREADY_EXISTS (errors.ts).
      return { tenant: toTenant(await tenants.create(req.id, req.name)) };
    },

    async listTenants(_req, ctx) {
      requireOperator(ctx);
      return { tenants: (await tenants.list()).map(toTenant) };
    },

    async createApiKey(req, ctx) {
      validateRequest(validator, CreateApiKeyRequestSchema, req);
      const tenantId = targetTenant(ctx, req.tenantId);
      if (!(await tenants.exists(tenantId))) throw new ConnectError(`tenant_id: no tenant "${tenantId}"`, Code.NotFound);
      const id = newKeyId();
      const secret = newSecret(id);
      const row = await keys.create({
        id,
        tenantId,
        name: req.name,
        scopes: req.scopes.map((s) => SCOPE_NAMES[s]!),
        secretHash: hashSecret(secret),
        expiresAt: req.expiresAt ? timestampDate(req.expiresAt) : null,
      });
      // A failed attempt with this id may be remembered as unknown; not on this replica any more.
      auth.forget(id);
      return { key: toApiKey(row), secret };
    },

    async listApiKeys(req, ctx) {
      validateRequest(validator, ListApiKeysRequestSchema, req);
      return { keys: (await keys.list(targetTenant(ctx, req.tenantId))).map(toApiKey) };
    },

    async rotateApiKey(req, ctx) {
      validateRequest(validator, RotateApiKeyRequestSchema, req);
      await ownedKey(ctx, req.keyId);
      const secret = newSecret(req.keyId);
      const row = await keys.rotate(req.keyId, hashSecret(secret));
      if (!row) throw new ConnectError(`API key "${req.keyId}" is revoked`, Code.FailedPrecondition);
      auth.forget(req.keyId);
      return { key: toApiKey(row), secret };
    },

    async revokeApiKey(req, ctx) {
      validateRequest(validator, RevokeApiKeyRequestSchema, req);
      await ownedKey(ctx, req.keyId);
      const row = await keys.revoke(req.keyId);
      auth.forget(req.keyId);
      return { key: toApiKey(row!) };
    },

    ...tenantLifecycle(deps),
    ...dataProtectionAdmin(deps.dataProtection ? { ...deps.dataProtection, validator, tenants: deps.tenants } : null, targetTenant),
    ...dataLifecycleAdmin(deps.dataLifecycle ? { ...deps.dataLifecycle, validator, tenants: deps.tenants } : null, targetTenant),
  };
}
