// AdminService's data protection calls: masking rules and data key rotation
// (docs/ARCHITECTURE.md, "Data protection").
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type AdminService,
  GetMaskingRulesRequestSchema,
  MaskingRulesSchema,
  RotateDataKeyRequestSchema,
  SetMaskingRulesRequestSchema,
} from "../../gen/auditlog/v1/admin_pb.js";
import { checkMaskingRules, type MaskingPattern, type MaskingRules } from "../domain/masking.ts";
import { fieldError } from "../platform/error-details.ts";
import { TenantNotFoundError, type TenantStore } from "../store/tenant-store.ts";
import type { MaskingRulesCache } from "./masking-rules.ts";
import type { DataKeys } from "./data-keys.ts";
import { validateRequest } from "./request-context.ts";

export type DataProtectionAdminDeps = {
  validator: Validator;
  tenants: Pick<TenantStore, "exists">;
  masking: MaskingRulesCache;
  /** Null: encryption at rest is off. */
  dataKeys: DataKeys | null;
};

type Impl = Pick<ServiceImpl<typeof AdminService>, "getMaskingRules" | "setMaskingRules" | "rotateDataKey">;

function answer(r: { rules: MaskingRules; isDefault: boolean }) {
  return { rules: create(MaskingRulesSchema, r.rules), isDefault: r.isDefault };
}

export function dataProtectionAdmin(
  deps: DataProtectionAdminDeps | null,
  targetTenant: (ctx: HandlerContext, requested: string) => string,
): Impl {
  if (deps === null) {
    const off = (): never => {
      throw new ConnectError("data protection is not configured on this server", Code.Unimplemented);
    };
    return { getMaskingRules: off, setMaskingRules: off, rotateDataKey: off };
  }
  const { validator, tenants, masking, dataKeys } = deps;
  const existing = async (ctx: HandlerContext, requested: string) => {
    const tenantId = targetTenant(ctx, requested);
    if (!(await tenants.exists(tenantId))) throw new TenantNotFoundError(`no tenant "${tenantId}"`);
    return tenantId;
  };
  return {
    async getMaskingRules(req, ctx) {
      validateRequest(validator, GetMaskingRulesRequestSchema, req);
      return answer(await masking.get(await existing(ctx, req.tenantId)));
    },

    async setMaskingRules(req, ctx) {
      validateRequest(validator, SetMaskingRulesRequestSchema, req);
      const tenantId = await existing(ctx, req.tenantId);
      let rules: MaskingRules | null = null;
      if (!req.useDefault) {
        if (!req.rules) throw fieldError("rules", "required unless use_default is set");
        rules = { keys: req.rules.keys, patterns: req.rules.patterns as MaskingPattern[], paths: req.rules.paths };
        const [problem] = checkMaskingRules(rules);
        if (problem) throw fieldError(`rules.${problem.field}`, problem.reason);
      }
      await masking.set(tenantId, rules);
      return answer(await masking.get(tenantId));
    },

    async rotateDataKey(req, ctx) {
      validateRequest(validator, RotateDataKeyRequestSchema, req);
      const tenantId = await existing(ctx, req.tenantId);
      if (dataKeys === null) {
        throw new ConnectError("encryption at rest is off: no AUDITLOG_KEK is configured", Code.FailedPrecondition);
      }
      return dataKeys.rotate(tenantId);
    },
  };
}
