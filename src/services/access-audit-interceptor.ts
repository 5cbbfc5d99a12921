// Records every QueryService and AdminService call in the access audit
// (access-audit.ts), refusals included. It sits outside authentication, so it
// sees the refusals of authenticated callers (authenticate.ts remembers who
// they were) and everything the handlers answer.
//
// A unary call is recorded after the handler and before the response goes
// out; if the record cannot be committed the caller gets UNAVAILABLE instead
// of the response. A server stream (ExportEvents) is recorded when the
// handler has produced its last message, before the stream is closed with
// OK: if the record fails, the stream ends with UNAVAILABLE, so a client
// never holds an export it could take for complete without its record.
import { type DescMessage, toJsonString } from "@bufbuild/protobuf";
import type { Interceptor, StreamResponse, UnaryRequest } from "@connectrpc/connect";
import { ExportFormat } from "../../gen/auditlog/v1/query_pb.js";
import { type Principal, principalKey } from "../auth/principal.ts";
import { ExportRecordCounter } from "../domain/export-record-count.ts";
import { type Access, type AccessAudit, accessTenantKey } from "./access-audit.ts";

const AUDITED = new Set(["auditlog.v1.QueryService", "auditlog.v1.AdminService"]);

/** Calls by the operator that concern no single tenant: logged by the server, recorded nowhere. */
const CROSS_TENANT = new Set(["ListTenants"]);

type Message = Record<string, unknown>;

/** How many results a unary response carries; null when counting makes no sense. */
function resultsOf(method: string, res: Message): number | null {
  switch (method) {
    case "SearchEvents":
      return (res.events as unknown[]).length;
    case "GetStats":
      return Number(res.total);
    case "VerifyChain":
      return Number(res.checked);
    case "ListApiKeys":
      return (res.keys as unknown[]).length;
    case "GetIndexStatus":
      return null;
    default:
      return 1;
  }
}

function requestJson(desc: DescMessage, message: unknown): string | null {
  try {
    // The person an erasure is about must not be written into the log they are erased from.
    if (desc.typeName === "auditlog.v1.EraseSubjectRequest") return toJsonString(desc, { ...(message as object), value: "" } as never);
    return toJsonString(desc, message as never);
  } catch {
    return null;
  }
}

/** The tenant a call belongs to: the one a handler named, else the caller's, else the one the request names. */
function tenantOfCall(values: { get: (k: typeof accessTenantKey) => string | null }, p: Principal, message: Message): string | null {
  const named = values.get(accessTenantKey);
  if (named !== null) return named || null; // "": the handler says there is no log to record in (a deleted tenant)
  if (p.kind !== "operator" && p.tenantId) return p.tenantId;
  for (const field of ["tenantId", "id"]) {
    const v = message[field];
    if (typeof v === "string" && v) return v;
  }
  return null;
}

export function accessAuditInterceptor(audit: AccessAudit): Interceptor {
  return (next) => async (incoming) => {
    const service = incoming.service.typeName;
    const method = incoming.method.name;
    if (!AUDITED.has(service)) return next(incoming);
    let req = incoming;
    let request: unknown;
    if (req.stream) {
      // A server stream's handler gets its one request message as a stream too: read it, hand it on.
      if (req.method.methodKind !== "server_streaming") return next(req);
      const messages: unknown[] = [];
      for await (const m of req.message) messages.push(m);
      request = messages[0];
      req = {
        ...req,
        message: (async function* () {
          yield* messages;
        })(),
      } as typeof req;
    } else {
      request = (req as UnaryRequest).message;
    }
    const message = (request ?? {}) as Message;
    const base = {
      service,
      method,
      request: request === undefined ? null : requestJson(req.method.input, request),
      client: { ip: "", userAgent: req.header.get("user-agent") ?? "" },
    };
    const record = (p: Principal, tenantId: string | null, rest: Pick<Access, "results" | "error">) => {
      if (!tenantId || (p.kind === "operator" && CROSS_TENANT.has(method))) return Promise.resolve();
      return audit.record({ ...base, ...rest, principal: p, tenantId });
    };
    const failed = (err: unknown) => {
      const principal = req.contextValues.get(principalKey);
      const known = principal ? { principal, tenantId: tenantOfCall(req.contextValues, principal, message) } : null;
      // The operator's cross-tenant calls are recorded nowhere, failed or not.
      if (principal?.kind === "operator" && CROSS_TENANT.has(method)) return Promise.resolve();
      return audit.recordFailure(base, err, known);
    };

    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      await failed(err);
      throw err;
    }
    const principal = req.contextValues.get(principalKey)!;
    const tenantId = () => tenantOfCall(req.contextValues, principal, message);
    if (!res.stream) {
      await record(principal, tenantId(), { results: resultsOf(method, res.message as unknown as Message) });
      return res;
    }
    const format = message.format === ExportFormat.CSV ? "csv" : "ndjson";
    const counter = new ExportRecordCounter(format);
    const inner = res.message;
    // An export is recorded with its count once complete; an open-ended
    // stream (TailEvents) when it opens, before its first message.
    const atEnd = method === "ExportEvents";
    async function* audited() {
      if (!atEnd) await record(principal, tenantId(), { results: null });
      try {
        for await (const m of inner) {
          const chunk = (m as unknown as { chunk?: Uint8Array }).chunk;
          if (chunk) counter.add(chunk);
          yield m;
        }
      } catch (err) {
        await failed(err);
        throw err;
      }
      if (atEnd) await record(principal, tenantId(), { results: counter.records });
    }
    return { ...res, message: audited() } as StreamResponse<DescMessage, DescMessage>;
  };
}
