// The three services' real handlers, auth interceptor, validator and group
// committer wired as src/app.ts wires them, over in-memory stores instead of
// PostgreSQL and Elasticsearch, and called through createRouterTransport with
// typed clients: handler behaviour (per-event outcomes, error codes, paging,
// who may do what) tested without servers. What the stores themselves do is
// tested against the real databases in test/integration.
import { Writable } from "node:stream";
import { createValidator } from "@bufbuild/protovalidate";
import { createRouterTransport } from "@connectrpc/connect";
import { AdminService, Scope } from "../../gen/auditlog/v1/admin_pb.js";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { authInterceptor } from "../../src/auth/auth-interceptor.ts";
import { Authenticator } from "../../src/auth/authenticator.ts";
import type { StoredRecord } from "../../src/domain/event-record.ts";
import type { EventQuery, SortDirection } from "../../src/domain/event-query.ts";
import { chainHash, GENESIS_HASH } from "../../src/domain/hash-chain.ts";
import { compareForSort, matchesQuery } from "../../src/domain/match-query.ts";
import type { PagePosition } from "../../src/domain/page-token.ts";
import type { Micros } from "../../src/domain/timestamp.ts";
import type { IndexStatus, SearchBackend, SearchPage, Stats } from "../../src/search/backend.ts";
import { createLogger } from "../../src/platform/log.ts";
import { errorsInterceptor } from "../../src/services/errors.ts";
import { adminService } from "../../src/services/admin-service.ts";
import { ingestService } from "../../src/services/ingest-service.ts";
import { type Limits, limitsInterceptor } from "../../src/services/limits-interceptor.ts";
import type { RateLimiter } from "../../src/services/rate-limiter.ts";
import { queryService } from "../../src/services/query-service.ts";
import type { ApiKeyRow, ApiKeyStore } from "../../src/store/api-key-store.ts";
import type { EventReader } from "../../src/store/event-reader.ts";
import { UnknownTenantError, type WriteItem, type WriteResult } from "../../src/store/event-writer.ts";
import { GroupCommitter } from "../../src/store/group-commit.ts";
import type { JsonObject } from "@bufbuild/protobuf";
import {
  TenantExistsError,
  TenantLifecycleError,
  TenantNotFoundError,
  type TenantRow,
  type TenantStore,
} from "../../src/store/tenant-store.ts";
import { bearerInterceptor, type ServiceClients, serviceClients } from "./transports.ts";

export type { ServiceClients } from "./transports.ts";

/**
 * The public surface of a store class. The classes keep their pool in a
 * private field, so a fake cannot be declared as the class itself; it
 * implements this and is handed over with a cast (see `inMemoryService`).
 */
type PublicOf<T> = Pick<T, keyof T>;

export class MemoryTenantStore implements PublicOf<TenantStore> {
  readonly rows = new Map<string, TenantRow>();

  async create(id: string, name: string): Promise<TenantRow> {
    if (this.rows.has(id)) throw new TenantExistsError(`tenant ${id} already exists`);
    const row: TenantRow = {
      id,
      name,
      created_at: new Date(),
      settings: {},
      updated_at: null,
      suspended_at: null,
      deletion_expires_at: null,
    };
    this.rows.set(id, row);
    return row;
  }

  async list(): Promise<TenantRow[]> {
    return [...this.rows.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async get(id: string): Promise<TenantRow | null> {
    return this.rows.get(id) ?? null;
  }

  async exists(id: string): Promise<boolean> {
    return this.rows.has(id);
  }

  async suspendedAt(id: string): Promise<Date | null | undefined> {
    return this.rows.get(id)?.suspended_at;
  }

  private change(id: string, fields: Partial<TenantRow>): TenantRow {
    const row = this.rows.get(id);
    if (!row) throw new TenantNotFoundError(`no tenant "${id}"`);
    Object.assign(row, fields, { updated_at: new Date() });
    return row;
  }

  async update(id: string, change: { name?: string; settings?: JsonObject }): Promise<TenantRow> {
    return this.change(id, {
      ...(change.name !== undefined && { name: change.name }),
      ...(change.settings && { settings: change.settings }),
    });
  }

  async setSuspended(id: string, suspended: boolean): Promise<TenantRow> {
    const row = this.rows.get(id);
    return this.change(
      id,
      suspended ? { suspended_at: row?.suspended_at ?? new Date() } : { suspended_at: null, deletion_expires_at: null },
    );
  }

  /** The pending deletion's token hashes, by tenant. */
  readonly deletionTokens = new Map<string, Buffer>();

  async requestDeletion(id: string, tokenHash: Buffer, expiresAt: Date): Promise<TenantRow> {
    if (!this.rows.get(id)?.suspended_at && this.rows.has(id)) throw new TenantLifecycleError(`tenant "${id}" must be suspended`);
    this.deletionTokens.set(id, tokenHash);
    return this.change(id, { deletion_expires_at: expiresAt });
  }

  async delete(id: string, tokenHash: Buffer, now = new Date()): Promise<Record<string, number>> {
    const row = this.rows.get(id);
    if (!row) throw new TenantNotFoundError(`no tenant "${id}"`);
    const stored = this.deletionTokens.get(id);
    if (!row.suspended_at || !stored || !row.deletion_expires_at || row.deletion_expires_at <= now || !stored.equals(tokenHash)) {
      throw new TenantLifecycleError(`tenant "${id}" has no pending deletion with this token`);
    }
    this.rows.delete(id);
    return { tenants: 1 };
  }
}

export class MemoryApiKeyStore implements PublicOf<ApiKeyStore> {
  readonly rows = new Map<string, ApiKeyRow>();
  /** Set to make every lookup by id fail with it, as when PostgreSQL is down. */
  failLookups: Error | null = null;

  async create(k: {
    id: string;
    tenantId: string;
    name: string;
    scopes: string[];
    secretHash: Buffer;
    expiresAt: Date | null;
  }): Promise<ApiKeyRow> {
    const row: ApiKeyRow = {
      id: k.id,
      tenant_id: k.tenantId,
      name: k.name,
      scopes: [...k.scopes],
      secret_hash: k.secretHash,
      created_at: new Date(),
      rotated_at: null,
      revoked_at: null,
      expires_at: k.expiresAt,
    };
    this.rows.set(k.id, row);
    return { ...row };
  }

  async get(id: string): Promise<ApiKeyRow | null> {
    if (this.failLookups) throw this.failLookups;
    const row = this.rows.get(id);
    return row ? { ...row } : null;
  }

  async list(tenantId: string): Promise<ApiKeyRow[]> {
    return [...this.rows.values()].filter((r) => r.tenant_id === tenantId).map((r) => ({ ...r }));
  }

  async rotate(id: string, secretHash: Buffer): Promise<ApiKeyRow | null> {
    const row = this.rows.get(id);
    if (!row || row.revoked_at) return null;
    Object.assign(row, { secret_hash: secretHash, rotated_at: new Date() });
    return { ...row };
  }

  async revoke(id: string): Promise<ApiKeyRow | null> {
    const row = this.rows.get(id);
    if (!row) return null;
    row.revoked_at ??= new Date();
    return { ...row };
  }
}

/**
 * The system of record in memory: what src/store/event-writer.ts decides per
 * event (accepted with the next sequence and chain hash, duplicate or
 * conflict by content hash), the reads QueryService makes, and a search
 * backend that filters with the reference matcher (src/domain/match-query.ts).
 */
export class MemoryEventLog implements PublicOf<EventReader>, SearchBackend {
  readonly name = "postgresql";
  private readonly events = new Map<string, StoredRecord[]>();
  private readonly byId = new Map<string, StoredRecord>();
  /** Content digests by tenant and id, what a retry is compared with (event_ids.content_hash). */
  private readonly digests = new Map<string, string>();
  private clock: Micros = 1_800_000_000_000_000n;
  /** Every batch the group committer handed over, for tests about batching. */
  readonly batches: WriteItem[][] = [];
  /** Set to make the next write fail as a whole, as a failed transaction does. */
  failNextWrite: Error | null = null;
  /** While set, a write waits for it: the next callers queue up and share the following batch. */
  holdWrites: Promise<void> | null = null;
  /** Whether a tenant has a chain head; the writer refuses a batch with one that has not. */
  hasTenant: (tenantId: string) => boolean = () => true;

  write = async (items: WriteItem[]): Promise<WriteResult[]> => {
    this.batches.push(items);
    if (this.holdWrites) await this.holdWrites;
    if (this.failNextWrite) {
      const err = this.failNextWrite;
      this.failNextWrite = null;
      throw err;
    }
    const unknown = [...new Set(items.map((i) => i.tenantId))].sort().find((t) => !this.hasTenant(t));
    if (unknown !== undefined) throw new UnknownTenantError(unknown);
    const receivedAt = this.clock++;
    return items.map((item) => {
      const key = `${item.tenantId}\u0000${item.record.id}`;
      const prior = this.byId.get(key);
      if (prior) return { status: this.digests.get(key) === item.digest ? "duplicate" : "conflict", sequence: prior.sequence };
      const chain = this.chain(item.tenantId);
      const prevHash = chain.at(-1)?.hash ?? GENESIS_HASH;
      const link = { tenantId: item.tenantId, sequence: BigInt(chain.length + 1), receivedAt, contentHash: item.contentHash };
      const stored: StoredRecord = { ...item.record, ...link, prevHash, hash: chainHash(prevHash, link), salt: item.salt };
      chain.push(stored);
      this.byId.set(key, stored);
      this.digests.set(key, item.digest);
      return { status: "accepted", sequence: stored.sequence };
    });
  };

  /** The tenant's events in sequence order; mutable, so tests can tamper with the chain. */
  chain(tenantId: string): StoredRecord[] {
    let chain = this.events.get(tenantId);
    if (!chain) this.events.set(tenantId, (chain = []));
    return chain;
  }

  async getEvent(tenantId: string, id: string): Promise<StoredRecord | null> {
    return this.byId.get(`${tenantId}\u0000${id}`) ?? null;
  }

  async search(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    after: PagePosition | null,
    limit: number,
    withTotal: boolean,
  ): Promise<SearchPage> {
    const matching = this.chain(tenantId)
      .filter((r) => matchesQuery(r, q))
      .sort((a, b) => compareForSort(a, b, direction));
    const afterRecord = after && ({ occurredAt: after.occurredAt, sequence: after.sequence } as StoredRecord);
    const rest = afterRecord ? matching.filter((r) => compareForSort(r, afterRecord, direction) > 0) : matching;
    return { records: rest.slice(0, limit), total: withTotal ? BigInt(matching.length) : null, totalIsLowerBound: false };
  }

  async head(tenantId: string): Promise<bigint> {
    return this.chain(tenantId).at(-1)?.sequence ?? 0n;
  }

  async readAfter(tenantId: string, after: bigint, limit: number): Promise<StoredRecord[]> {
    return this.chain(tenantId)
      .filter((r) => r.sequence > after)
      .slice(0, limit);
  }

  async walkChain(
    tenantId: string,
    from: bigint,
    to: bigint | null,
    start: (prevHash: string | null, last: bigint) => (r: StoredRecord) => boolean,
  ): Promise<void> {
    const chain = this.chain(tenantId);
    const head = chain.at(-1)?.sequence ?? 0n;
    const last = to === null || to > head ? head : to;
    const prev = from > 1n ? (chain.find((r) => r.sequence === from - 1n)?.hash ?? null) : null;
    const visit = start(prev, last);
    for (const r of chain) {
      if (r.sequence < from || r.sequence > last) continue;
      if (!visit(r)) return;
    }
  }

  /** While set, an export waits for it after each batch, as a slow read does (and stops when its signal aborts). */
  holdExports: Promise<void> | null = null;

  async *export(
    tenantId: string,
    q: EventQuery,
    direction: SortDirection,
    limit: bigint | null,
    signal: AbortSignal,
  ): AsyncIterable<StoredRecord[]> {
    const matching = this.chain(tenantId)
      .filter((r) => matchesQuery(r, q))
      .sort((a, b) => compareForSort(a, b, direction))
      .slice(0, limit === null ? undefined : Number(limit));
    for (const r of matching) {
      signal.throwIfAborted();
      yield [r];
      const hold = this.holdExports;
      if (hold) {
        await new Promise<void>((resolve, reject) => {
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
          void hold.then(resolve);
        });
      }
    }
  }

  async stats(): Promise<Stats> {
    throw new Error("not used by these tests");
  }

  async waitForPosition(tenantId: string, position: bigint): Promise<boolean> {
    return (this.chain(tenantId).at(-1)?.sequence ?? 0n) >= position;
  }

  async indexStatus(tenantId: string): Promise<IndexStatus> {
    const head = this.chain(tenantId).at(-1)?.sequence ?? 0n;
    return { backend: "postgresql", committedPosition: head, indexedPosition: head, lagEvents: 0n, lagSeconds: 0, lastReconcile: null };
  }
}

export type InMemoryService = {
  tenants: MemoryTenantStore;
  keys: MemoryApiKeyStore;
  events: MemoryEventLog;
  committer: GroupCommitter<WriteItem, WriteResult>;
  operatorKey: string;
  /** Typed clients sending `Authorization: Bearer <secret>` (none without a secret). */
  clients(secret?: string): ServiceClients;
  /** A tenant and a key with the given scopes, made through AdminService as the operator. */
  tenantKey(tenantId: string, scopes?: ("SCOPE_INGEST" | "SCOPE_QUERY" | "SCOPE_ADMIN")[]): Promise<string>;
};

const SCOPES = { SCOPE_INGEST: Scope.INGEST, SCOPE_QUERY: Scope.QUERY, SCOPE_ADMIN: Scope.ADMIN } as const;

export function inMemoryService(opts: { maxBatchEvents?: number; ingestLimiter?: RateLimiter; limits?: Limits } = {}): InMemoryService {
  const tenants = new MemoryTenantStore();
  const keys = new MemoryApiKeyStore();
  const events = new MemoryEventLog();
  events.hasTenant = (tenantId) => tenants.rows.has(tenantId);
  const operatorKey = "operator-test-key";
  const validator = createValidator();
  const auth = new Authenticator(keys as PublicOf<ApiKeyStore> as ApiKeyStore, operatorKey, 60_000);
  const committer = new GroupCommitter<WriteItem, WriteResult>(events.write, {
    maxBatchEvents: opts.maxBatchEvents ?? 1000,
    maxPendingEvents: 10_000,
  });
  // Failed writes are logged; the tests assert on codes, not on log lines.
  const log = createLogger({ level: "error", stream: new Writable({ write: (_chunk, _enc, cb) => cb() }) });
  const routes = (router: Parameters<Parameters<typeof createRouterTransport>[0]>[0]) => {
    router.service(IngestService, ingestService({ validator, committer, log, limiter: opts.ingestLimiter }));
    router.service(QueryService, queryService({ validator, reader: events as PublicOf<EventReader> as EventReader, backend: events }));
    router.service(
      AdminService,
      adminService({
        validator,
        tenants: tenants as PublicOf<TenantStore> as TenantStore,
        keys: keys as PublicOf<ApiKeyStore> as ApiKeyStore,
        auth,
      }),
    );
  };
  const clients = (secret?: string): ServiceClients => {
    const transport = createRouterTransport(routes, {
      router: { interceptors: [errorsInterceptor(), authInterceptor(auth), limitsInterceptor(opts.limits ?? {})] },
      transport: { interceptors: secret ? [bearerInterceptor(secret)] : [] },
    });
    return serviceClients(transport);
  };
  const operator = clients(operatorKey);
  return {
    tenants,
    keys,
    events,
    committer,
    operatorKey,
    clients,
    async tenantKey(tenantId, scopes = ["SCOPE_INGEST", "SCOPE_QUERY", "SCOPE_ADMIN"]) {
      if (!(await tenants.exists(tenantId))) await operator.admin.createTenant({ id: tenantId, name: tenantId });
      const { secret } = await operator.admin.createApiKey({ tenantId, name: scopes.join("+"), scopes: scopes.map((s) => SCOPES[s]) });
      return secret;
    },
  };
}
