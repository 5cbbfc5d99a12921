// The access audit: every read of a tenant's log and every administrative
// action on a tenant becomes an event in that tenant's own log, written
// through the same group commit and hash chain as producers' events, under
// the reserved action prefix `auditlog.` that producers cannot write
// (src/domain/event-validation.ts). Admin and Auditor find them like any
// other event, e.g. `action:auditlog.*`.
//
// Synchronous by design (docs/ARCHITECTURE.md, "Access audit"): record()
// resolves only once the record is committed, and callers send their
// response after it; a record that cannot be committed fails the call with
// UNAVAILABLE, because an unrecorded read is not allowed. Recording goes
// straight to the group commit, never through the RPC stack, so recording
// cannot itself be recorded (no recursion), while reading the audit log is a
// read like any other and is recorded.
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import { refusalOf } from "../auth/authenticate.ts";
import { callerIdOf, type Principal } from "../auth/principal.ts";
import type { EventRecord, OutcomeName } from "../domain/event-record.ts";
import { RESERVED_ACTION_PREFIX } from "../domain/event-validation.ts";
import { sealContent } from "../domain/hash-chain.ts";
import { microsFromDate } from "../domain/timestamp.ts";
import { uuidv7 } from "../domain/uuidv7.ts";
import type { Logger } from "../platform/log.ts";
import type { WriteItem, WriteResult } from "../store/event-writer.ts";
import { connectErrorOf } from "./errors.ts";

/** What the group commit offers (GroupCommitter.submit). */
export type SubmitToCommit = (items: WriteItem[]) => Promise<{ committed: Promise<WriteResult[]> }>;

/**
 * The tenant an administrative call acted on, when neither the caller nor
 * the request names it (the operator rotating a key by its id): handlers set
 * it, the interceptor reads it. The empty string: no log to record in (the
 * tenant was just deleted).
 */
export const accessTenantKey = createContextKey<string | null>(null, { description: "tenant an admin call acted on" });

/** One access to record. */
export type Access = {
  tenantId: string;
  principal: Principal;
  /** Full name of the proto service, e.g. auditlog.v1.QueryService. */
  service: string;
  /** Method name, e.g. SearchEvents. */
  method: string;
  /** How it came, when not as an RPC, e.g. "GET /v1/export". */
  via?: string;
  /** The request (the query) as JSON text; long requests are cut. */
  request: string | null;
  /** How many results it returned (events, keys...); null when that means nothing (index status). */
  results: number | null;
  /** Set when the call did not succeed. */
  error?: { code: Code; message: string; denied: boolean };
  client?: { ip: string; userAgent: string };
  /** A record that stands for this many more refusals like it, folded between `from` and `to` (AccessAudit.recordFailure). */
  repeated?: { count: number; from: Date; to: Date };
};

const MAX_REQUEST_CHARS = 4096;
const MAX_REASON_CHARS = 512;

const SERVICE_SHORT: Record<string, string> = {
  "auditlog.v1.QueryService": "query",
  "auditlog.v1.AdminService": "admin",
};

/** auditlog.query.search_events for auditlog.v1.QueryService/SearchEvents. */
export function accessAction(service: string, method: string): string {
  const short = SERVICE_SHORT[service] ?? service.split(".").at(-1)!.toLowerCase();
  const snake = method.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
  return `${RESERVED_ACTION_PREFIX}${short}.${snake}`;
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Snake-case name of a Connect code (permission_denied), as in gRPC status names. */
function codeName(code: Code): string {
  return Code[code]!.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

export function actorOf(p: Principal): EventRecord["actor"] {
  const base = { ip: "", userAgent: "", sessionId: "" };
  if (p.kind === "key") return { ...base, id: p.keyId, type: "SERVICE", name: "api key" };
  if (p.kind === "token") return { ...base, id: p.subject, type: "USER", name: p.role ?? "" };
  return { ...base, id: "operator", type: "SYSTEM", name: "bootstrap key" };
}

function principalJson(p: Principal): JsonObject {
  if (p.kind === "key") return { kind: "api_key", key_id: p.keyId };
  if (p.kind === "token") return { kind: "token", subject: p.subject, role: p.role ?? "" };
  return { kind: "operator" };
}

/** The event that records `a`. */
export function accessRecord(a: Access, now = new Date()): EventRecord {
  const outcome: OutcomeName = !a.error ? "SUCCESS" : a.error.denied ? "DENIED" : "FAILURE";
  const call = `${a.service}/${a.method}`;
  const actor = actorOf(a.principal);
  const metadata: JsonObject = {
    call,
    principal: principalJson(a.principal),
    code: a.error ? codeName(a.error.code) : "ok",
  };
  if (a.via) metadata.via = a.via;
  if (a.request !== null) metadata.query = cut(a.request, MAX_REQUEST_CHARS);
  if (a.results !== null) metadata.results = a.results;
  if (a.error) metadata.reason = cut(a.error.message, MAX_REASON_CHARS);
  if (a.repeated) {
    metadata.repeated = a.repeated.count;
    metadata.repeated_from = a.repeated.from.toISOString();
    metadata.repeated_to = a.repeated.to.toISOString();
  }
  const who = `${actor.type === "SERVICE" ? "key" : actor.type === "USER" ? "user" : "operator"} ${actor.id}`;
  const what = a.error
    ? `${outcome === "DENIED" ? "refused" : "failed"} (${metadata.code})${a.repeated ? ` ${a.repeated.count} more times` : ""}`
    : a.results === null
      ? "succeeded"
      : `${a.results} result${a.results === 1 ? "" : "s"}`;
  return {
    id: uuidv7(now.getTime()),
    occurredAt: microsFromDate(now),
    action: accessAction(a.service, a.method),
    actor: { ...actor, ip: a.client?.ip ?? "", userAgent: cut(a.client?.userAgent ?? "", 256) },
    target: { type: "auditlog.tenant", id: a.tenantId, name: "" },
    outcome,
    severity: outcome === "SUCCESS" ? "INFO" : "WARNING",
    context: { requestId: "", traceId: "", source: "auditlog", location: "" },
    changes: null,
    metadata,
    message: `${a.method} by ${who}: ${what}`,
  };
}

/** Failures of one call by one caller with one code, being folded (AccessAudit.recordFailure). */
type FoldWindow = { access: Access; count: number; from: Date; timer: NodeJS.Timeout | null };

/** Callers and calls folded at once, at most (each holds its first request, up to 4 KiB): past it refusals are recorded one by one. */
const MAX_FOLD_WINDOWS = 1000;

export class AccessAudit {
  private readonly submit: SubmitToCommit;
  private readonly log: Logger;
  private readonly foldMs: number;
  private readonly windows = new Map<string, FoldWindow>();
  private unattributed = 0;

  /** `foldMs`: the window in which a caller's failures of a call with one code are folded into one record (recordFailure). */
  constructor(submit: SubmitToCommit, log: Logger, opts: { foldMs?: number } = {}) {
    this.submit = submit;
    this.log = log;
    this.foldMs = opts.foldMs ?? 1000;
  }

  /**
   * Records the access in its tenant's log and resolves once it is
   * committed; rejects with UNAVAILABLE when it could not be.
   */
  async record(a: Access): Promise<void> {
    const record = accessRecord(a);
    let results: WriteResult[];
    try {
      const { committed } = await this.submit([{ tenantId: a.tenantId, record, ...sealContent(record) }]);
      results = await committed;
    } catch (err) {
      this.log.warn("access audit: could not record an access; the call fails", {
        tenantId: a.tenantId,
        call: `${a.service}/${a.method}`,
        err: String(err),
      });
      throw new ConnectError(
        "the access could not be recorded in the audit log, so nothing is returned; retry later",
        Code.Unavailable,
        undefined,
        undefined,
        err,
      );
    }
    if (results[0]?.status !== "accepted") {
      // A fresh UUIDv7 cannot collide; if it ever did, the access is not on record.
      throw new ConnectError("the access could not be recorded in the audit log; retry", Code.Unavailable);
    }
  }

  /**
   * Records a call that was refused or failed. `known`: the caller and its
   * tenant when authentication had let it through; otherwise a refusal by
   * authenticate.ts says who it was. Never rejects: the call fails anyway,
   * and a record that could not be written must not hide why.
   */
  async recordFailure(
    call: Omit<Access, "tenantId" | "principal" | "results" | "error">,
    err: unknown,
    known: { principal: Principal; tenantId: string | null } | null,
  ): Promise<void> {
    const ce = connectErrorOf(err) ?? ConnectError.from(err);
    const refusal = refusalOf(err);
    const who = known ?? refusal ?? null;
    if (!who?.tenantId) return this.unattributable(`${call.service}/${call.method}`, ce.code);
    const denied = refusal !== undefined || ce.code === Code.PermissionDenied || ce.code === Code.Unauthenticated;
    const access: Access = {
      ...call,
      principal: who.principal,
      tenantId: who.tenantId,
      results: null,
      error: { code: ce.code, message: ce.rawMessage, denied },
    };
    // A refused call costs the caller nothing (over a limit, an invalid
    // query, a permission it lacks), so a client that ignores the answer
    // sends thousands a second: recorded one by one they would be a write
    // load that no rate limit bounds, paid by every tenant. Per caller, call
    // and code, the first of a window is recorded as it happens, the rest of
    // the window are counted and recorded as one event when it closes.
    if (this.fold(access)) return;
    // record() has logged why it failed; the call fails anyway with its own error.
    await this.record(access).catch(() => {});
  }

  /** Whether `a` was folded into an open window; otherwise opens one (the caller records `a`). */
  private fold(a: Access): boolean {
    const key = `${a.tenantId}\0${callerIdOf(a.principal)}\0${a.service}/${a.method}\0${a.error?.code}`;
    const open = this.windows.get(key);
    if (open) {
      open.count++;
      return true;
    }
    if (this.windows.size >= MAX_FOLD_WINDOWS) return false;
    const w: FoldWindow = { access: a, count: 0, from: new Date(), timer: null };
    this.windows.set(key, w);
    this.arm(key, w);
    return false;
  }

  private arm(key: string, w: FoldWindow): void {
    w.timer = setTimeout(() => {
      if (w.count === 0) {
        this.windows.delete(key);
        return;
      }
      // Still refused: one record for the window, and the next window opens.
      void this.recordFolded(w);
      this.arm(key, w);
    }, this.foldMs);
    w.timer.unref();
  }

  private recordFolded(w: FoldWindow): Promise<void> {
    const to = new Date();
    const repeated = { count: w.count, from: w.from, to };
    w.count = 0;
    w.from = to;
    return this.record({ ...w.access, repeated }).catch(() => {});
  }

  /** Records what the open windows have folded and closes them (at shutdown, while the group commit still takes writes). */
  async close(): Promise<void> {
    const open = [...this.windows.values()];
    this.windows.clear();
    for (const w of open) if (w.timer) clearTimeout(w.timer);
    await Promise.all(open.filter((w) => w.count > 0).map((w) => this.recordFolded(w)));
  }

  /**
   * A refusal that belongs to no tenant (no or a bad credential, or a caller
   * whose tenant is unknown): counted and logged only, since writing it into
   * some tenant's log would let anyone write there.
   */
  unattributable(call: string, code: Code): void {
    this.unattributed++;
    this.log.info("access refused, attributable to no tenant", { call, code: codeName(code), total: this.unattributed });
  }

  /** How many refusals were unattributable since start. */
  get unattributedCount(): number {
    return this.unattributed;
  }
}
