// Export and statistics against real PostgreSQL and Elasticsearch: ~20,000
// events of two tenants are written through writeBatch and indexed into a
// test-only index set; then both backends must give the same records in the
// same order and the same statistics, the CSV must parse back into the NDJSON
// objects, points in time must be released however an export ends, and the
// HTTP download must stream with auth and fail cleanly.
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, createContextValues, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { Client } from "@elastic/elasticsearch";
import { parse as parseCsv } from "csv-parse/sync";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type ActorType, EventSchema, type Outcome, type Severity } from "../../gen/auditlog/v1/event_pb.js";
import {
  type ExportEventsRequest,
  ExportEventsRequestSchema,
  type ExportEventsResponse,
  ExportFormat,
  type GetStatsRequest,
  GetStatsRequestSchema,
  type GetStatsResponse,
  QueryService,
  SortOrder,
  StatsInterval as StatsIntervalEnum,
} from "../../gen/auditlog/v1/query_pb.js";
import { Authenticator } from "../../src/auth/authenticator.ts";
import { type Principal, principalKey } from "../../src/auth/principal.ts";
import { hashSecret, newKeyId, newSecret } from "../../src/domain/api-key-secret.ts";
import type { EventQuery, SortDirection } from "../../src/domain/event-query.ts";
import { recordFromEvent, type StoredRecord } from "../../src/domain/event-record.ts";
import { CSV_COLUMNS } from "../../src/domain/export-format.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { parseQueryString } from "../../src/domain/query-string.ts";
import type { Micros } from "../../src/domain/timestamp.ts";
import type { SearchBackend, Stats, StatsInterval } from "../../src/search/backend.ts";
import { esExport } from "../../src/search/elasticsearch/export.ts";
import { esStats } from "../../src/search/elasticsearch/stats.ts";
import { TooManyBucketsError } from "../../src/search/stats.ts";
import { documentFromRecord, documentId } from "../../src/search/elasticsearch/event-document.ts";
import { indexNames } from "../../src/search/elasticsearch/index-names.ts";
import { indexTemplate } from "../../src/search/elasticsearch/index-template.ts";
import { ensureIndexTemplate } from "../../src/search/elasticsearch/index-setup.ts";
import { createLogger } from "../../src/platform/log.ts";
import { exportHttpHandler } from "../../src/services/export-http.ts";
import { CHUNK_BYTES, exportChunks } from "../../src/services/export-stream.ts";
import { queryService } from "../../src/services/query-service.ts";
import type { EventReader } from "../../src/store/event-reader.ts";
import { ApiKeyStore } from "../../src/store/api-key-store.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { pgExport } from "../../src/search/postgres/export.ts";
import { pgStats } from "../../src/search/postgres/stats.ts";
import { type freshDatabase, migratedDatabase } from "../support/db.ts";

const TENANT_A = "tenant-a";
const TENANT_B = "tenant-b";
const COUNT_A = 12_000;
const COUNT_B = 8_000;
const BASE_SECONDS = BigInt(Date.UTC(2026, 0, 27, 13, 0, 0) / 1000); // a Tuesday; spans Jan-Apr (4 monthly indices)
const ACTIONS = ["customer.created", "customer.updated", "customer.address.changed", "invoice.billed", "user.login", "account.deactivated"];
const NASTY = ['said "hi", then left', "line one\nline two", "=1+2", "comma, here", "ünï — ✓", "cr\rlf\r\n"];

/** Event j of a tenant: times in triples (ties broken by sequence), order of writing shuffled against time. */
function makeEvent(tenant: string, i: number, n: number) {
  const j = (i * 7919) % n; // a permutation of 0..n-1 (7919 is prime and does not divide n)
  const slot = Math.floor(j / 3);
  const special = j % 11 === 0 ? NASTY[j % NASTY.length]! : "";
  return create(EventSchema, {
    id: `${tenant}-ev-${j}`,
    occurredAt: { seconds: BASE_SECONDS + BigInt(slot * 1500), nanos: (slot % 1000) * 1000 },
    action: ACTIONS[j % ACTIONS.length]!,
    actor: {
      id: `user-${j % 23}`,
      type: (j % 4) as ActorType,
      name: `User ${j % 23}${special}`,
      ip: j % 5 ? `10.0.${j % 256}.${j % 7}` : "",
      userAgent: j % 3 ? "Mozilla/5.0 (X11; Linux x86_64)" : "",
      sessionId: j % 2 ? `sess-${j % 41}` : "",
    },
    target: j % 5 === 0 ? undefined : { type: ["customer", "invoice", "account"][j % 3]!, id: `t-${j % 101}`, name: `Target ${j % 101}` },
    outcome: (1 + (j % 4)) as Outcome,
    severity: (1 + ((j * j) % 4)) as Severity,
    context: {
      requestId: `req-${tenant}-${j}`,
      traceId: j % 2 ? `trace-${j}` : "",
      source: j % 2 ? "billing-api" : "crm",
      location: `eu-${j % 3}`,
    },
    changes: j % 4 === 0 ? { before: { status: "active", n: j }, after: { status: "closed", tags: ["x", special] } } : undefined,
    metadata:
      j % 7 === 0
        ? undefined
        : { plan: ["free", "pro", "team"][j % 3]!, seats: j % 50, card: { brand: j % 2 ? "visa" : "amex" }, note: special || null },
    message: `event ${j} for user ${j % 23} ${special}`,
  });
}

function flattenJson(json: Record<string, any>): Record<string, string> {
  const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  const top = new Set(["tenant_id", "sequence", "received_at", "hash", "prev_hash"]);
  const out: Record<string, string> = {};
  for (const col of CSV_COLUMNS) {
    let v: any = top.has(col) ? json : json.event;
    for (const p of col.split(".").map(camel)) v = v?.[p];
    out[col] = v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}

async function collect(it: AsyncIterable<StoredRecord[]>): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for await (const batch of it) out.push(...batch);
  return out;
}

async function bytesOf(chunks: AsyncIterable<Uint8Array>): Promise<{ text: string; sizes: number[] }> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return { text: Buffer.concat(parts).toString("utf8"), sizes: parts.map((p) => p.length) };
}

function sorted(records: StoredRecord[], direction: SortDirection): boolean {
  for (let i = 1; i < records.length; i++) {
    const a = records[i - 1]!;
    const b = records[i]!;
    const cmp = a.occurredAt === b.occurredAt ? (a.sequence < b.sequence ? -1 : 1) : a.occurredAt < b.occurredAt ? -1 : 1;
    if (direction === "asc" ? cmp > 0 : cmp < 0) return false;
  }
  return true;
}

const day = (d: number): Micros => (BASE_SECONDS + BigInt(d * 86_400)) * 1_000_000n;

/** The service's index template under a test prefix. */
async function putTemplate(client: Client, prefix: string): Promise<void> {
  await ensureIndexTemplate(client, indexTemplate, { prefix });
}

const QUERIES: [string, EventQuery][] = [
  ["everything", { conditions: [] }],
  ["action exact and prefix", { conditions: [{ kind: "action", exact: ["user.login"], prefixes: ["customer."] }] }],
  [
    "actor and severity",
    {
      conditions: [
        { kind: "terms", field: "actor.id", values: ["user-1", "user-2", "user-22"] },
        { kind: "terms", field: "severity", values: ["WARNING", "CRITICAL"] },
      ],
    },
  ],
  ["time range", { conditions: [{ kind: "time", from: day(10), to: day(40) }] }],
  [
    "metadata",
    {
      conditions: [
        { kind: "metadata", path: ["card", "brand"], values: ["visa"] },
        { kind: "metadata", path: ["seats"], values: ["7", "12"] },
      ],
    },
  ],
  ["metadata key present", { conditions: [{ kind: "metadata", path: ["plan"], values: [] }] }],
  ["target type", { conditions: [{ kind: "terms", field: "target.type", values: ["invoice"] }] }],
  ["query string", { conditions: parseQueryString("action:customer.* severity>=WARNING outcome:failure") }],
  [
    "text",
    {
      conditions: [
        { kind: "text", words: ["user", "5"], negate: false },
        { kind: "text", words: ["visa"], negate: true },
      ],
    },
  ],
  ["nothing", { conditions: [{ kind: "terms", field: "actor.id", values: ["nobody"] }] }],
  ["none", { conditions: [{ kind: "none" }] }],
];

describe("export and statistics: Elasticsearch and PostgreSQL agree", () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let pool: pg.Pool;
  let es: Client;
  const names = indexNames(`test-export-${randomBytes(4).toString("hex")}`);
  const alias = names.alias;
  const all = new Map<string, StoredRecord[]>();

  const esBackend = (over: Partial<SearchBackend> = {}): SearchBackend => ({
    name: "elasticsearch",
    search: () => Promise.reject(new Error("not used")),
    export: (t, q, d, l, s) => esExport(es, t, q, d, l, s, { alias }),
    stats: (t, q, i, top) => esStats(es, t, q, i, top, { alias }),
    waitForPosition: async () => true,
    indexStatus: () => Promise.reject(new Error("not used")),
    ...over,
  });

  async function openContexts(): Promise<number> {
    const r = await es.nodes.stats({ metric: "indices", index_metric: "search" });
    return Object.values(r.nodes).reduce((n, node) => n + (node.indices?.search?.open_contexts ?? 0), 0);
  }

  async function waitForContexts(n: number): Promise<number> {
    let now = await openContexts();
    for (let i = 0; i < 50 && now !== n; i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = await openContexts();
    }
    return now;
  }

  beforeAll(async () => {
    ({ db, pool } = await migratedDatabase([
      [TENANT_A, "A"],
      [TENANT_B, "B"],
    ]));
    const items: WriteItem[] = [];
    for (let i = 0; i < Math.max(COUNT_A, COUNT_B); i++) {
      for (const [tenantId, n] of [
        [TENANT_A, COUNT_A],
        [TENANT_B, COUNT_B],
      ] as const) {
        if (i >= n) continue;
        const record = recordFromEvent(makeEvent(tenantId, i, n));
        items.push({ tenantId, record, ...sealContent(record) });
      }
    }
    for (let i = 0; i < items.length; i += 1000) {
      const results = await writeBatch(pool, items.slice(i, i + 1000));
      expect(results.every((r) => r.status === "accepted")).toBe(true);
    }

    es = new Client({ node: inject("elasticsearchUrl") });
    await putTemplate(es, names.prefix);
    const never = new AbortController().signal;
    for (const tenantId of [TENANT_A, TENANT_B]) {
      const records = await collect(pgExport(pool, tenantId, { conditions: [] }, "asc", null, never));
      all.set(tenantId, records);
      for (let i = 0; i < records.length; i += 4000) {
        const operations = records.slice(i, i + 4000).flatMap((r) => {
          const doc = documentFromRecord(r);
          return [{ index: { _index: names.indexFor(doc.occurred_at), _id: documentId(r.tenantId, r.id), routing: r.tenantId } }, doc];
        });
        const bulk = await es.bulk({ operations });
        expect(bulk.errors, JSON.stringify(bulk.items.find((x) => x.index?.error))).toBe(false);
      }
    }
    await es.indices.refresh({ index: names.pattern });
  });

  afterAll(async () => {
    await es?.indices.delete({ index: names.pattern, ignore_unavailable: true }).catch(() => undefined);
    await es?.indices.deleteIndexTemplate({ name: names.templateName }).catch(() => undefined);
    await es?.close();
    await pool?.end();
    await db?.drop();
  });

  it("wrote and indexed every event in four monthly indices", async () => {
    expect(all.get(TENANT_A)).toHaveLength(COUNT_A);
    expect(all.get(TENANT_B)).toHaveLength(COUNT_B);
    const indices = await es.cat.indices({ index: names.pattern, format: "json", h: ["index"] });
    // Spread by occurred_at on purpose (the indexer goes by received_at,
    // which would put them all in one): exports must cross indices.
    expect(indices.map((i) => i.index).sort()).toEqual(
      ["2026-01", "2026-02", "2026-03", "2026-04"].map((m) => names.indexFor(`${m}-01T00:00:00.000000Z`)),
    );
  });

  it("exports the same records in the same order from both backends", async () => {
    const never = new AbortController().signal;
    for (const [name, q] of QUERIES) {
      for (const tenantId of [TENANT_A, TENANT_B]) {
        for (const [direction, limit, batchSize] of [
          ["asc", null, undefined],
          ["desc", 2345n, 700],
        ] as const) {
          const label = `${name} ${tenantId} ${direction} limit=${limit}`;
          const fromPg = await collect(pgExport(pool, tenantId, q, direction, limit, never, { batchSize }));
          const fromEs = await collect(esExport(es, tenantId, q, direction, limit, never, { alias, batchSize }));
          expect(fromEs.length, label).toBe(fromPg.length);
          expect(fromEs, label).toEqual(fromPg);
          expect(sorted(fromPg, direction), label).toBe(true);
          expect(
            fromPg.every((r) => r.tenantId === tenantId),
            label,
          ).toBe(true);
          if (name === "everything") expect(fromPg.length, label).toBe(Math.min(all.get(tenantId)!.length, Number(limit ?? 1e9)));
          if (name === "nothing" || name === "none") expect(fromPg, label).toEqual([]);
          else expect(fromPg.length, label).toBeGreaterThan(100);
        }
      }
    }
  });

  it("writes CSV that parses back into the NDJSON objects, flattened", async () => {
    const backend = esBackend();
    const plan = { tenantId: TENANT_A, q: { conditions: [] }, direction: "asc" as const, limit: null };
    const never = new AbortController().signal;
    const csv = await bytesOf(exportChunks(backend, { ...plan, format: "csv" }, never));
    const ndjson = await bytesOf(exportChunks(backend, { ...plan, format: "ndjson" }, never));
    // Chunks of about 64 KiB: full ones reach CHUNK_BYTES and overshoot by less than one line.
    for (const sizes of [csv.sizes, ndjson.sizes]) {
      expect(sizes.length).toBeGreaterThan(5);
      for (const s of sizes.slice(0, -1)) expect(s).toBeGreaterThanOrEqual(CHUNK_BYTES);
      for (const s of sizes) expect(s).toBeLessThan(CHUNK_BYTES + 8192);
    }
    const rows = parseCsv(csv.text, { columns: true, record_delimiter: "\r\n" }) as Record<string, string>[];
    const lines = ndjson.text.split("\n");
    expect(lines.pop()).toBe("");
    expect(rows.length).toBe(lines.length);
    expect(rows.length).toBeGreaterThan(1000);
    for (const [i, row] of rows.entries()) expect(row).toEqual(flattenJson(JSON.parse(lines[i]!)));
    expect(csv.text.startsWith(`${CSV_COLUMNS.join(",")}\r\n`)).toBe(true);
    expect(rows.some((r) => r.message!.includes('"hi",'))).toBe(true);
    expect(rows.some((r) => r.message!.includes("\n"))).toBe(true);
    expect(rows.some((r) => r.message!.includes("\r\n"))).toBe(true);
    // An empty export: the header alone (CSV) or nothing (NDJSON).
    const none = { ...plan, q: { conditions: [{ kind: "none" as const }] } };
    expect((await bytesOf(exportChunks(backend, { ...none, format: "csv" }, never))).text).toBe(`${CSV_COLUMNS.join(",")}\r\n`);
    expect((await bytesOf(exportChunks(backend, { ...none, format: "ndjson" }, never))).sizes).toEqual([]);
  });

  it("closes the point in time when the consumer stops early or the export is aborted", async () => {
    const base = await waitForContexts(0);
    expect(base).toBe(0);
    // Stopped early by the consumer (return() through break).
    const it1 = esExport(es, TENANT_A, { conditions: [] }, "asc", null, new AbortController().signal, { alias, batchSize: 100 });
    let batches = 0;
    for await (const batch of it1) {
      expect(batch).toHaveLength(100);
      if (batches++ === 0) expect(await openContexts()).toBeGreaterThan(base);
      if (batches === 3) break;
    }
    expect(await waitForContexts(base)).toBe(base);
    // Aborted through the signal between two batches.
    const ac = new AbortController();
    const it2 = esExport(es, TENANT_A, { conditions: [] }, "desc", null, ac.signal, { alias, batchSize: 100 })[Symbol.asyncIterator]();
    expect((await it2.next()).done).toBe(false);
    expect(await openContexts()).toBeGreaterThan(base);
    ac.abort(new Error("stop"));
    await expect(it2.next()).rejects.toThrow("stop");
    expect(await waitForContexts(base)).toBe(base);
    // Finished normally.
    expect(
      await collect(esExport(es, TENANT_B, { conditions: [] }, "asc", 150n, new AbortController().signal, { alias, batchSize: 100 })),
    ).toHaveLength(150);
    expect(await waitForContexts(base)).toBe(base);
    // A point in time that expired under a slow consumer is replaced, and the export goes on exactly.
    const opened: string[] = [];
    const spy = {
      openPointInTime: async (...args: Parameters<Client["openPointInTime"]>) => {
        const r = await es.openPointInTime(...args);
        opened.push(r.id);
        return r;
      },
      search: es.search.bind(es),
      closePointInTime: es.closePointInTime.bind(es),
    } as unknown as Client;
    const q: EventQuery = { conditions: [{ kind: "action", exact: [], prefixes: ["customer."] }] };
    const got: StoredRecord[] = [];
    for await (const batch of esExport(spy, TENANT_A, q, "asc", null, new AbortController().signal, { alias, batchSize: 500 })) {
      got.push(...batch);
      if (got.length === 1000) await es.closePointInTime({ id: opened.at(-1)! }); // "expires"
    }
    expect(opened).toHaveLength(2);
    expect(got).toEqual(await collect(pgExport(pool, TENANT_A, q, "asc", null, new AbortController().signal)));
    expect(await waitForContexts(base)).toBe(base);
    // An alias with no index yet: empty, not an error.
    expect(
      await collect(
        esExport(es, TENANT_A, { conditions: [] }, "asc", null, new AbortController().signal, { alias: `${names.prefix}-nothing` }),
      ),
    ).toEqual([]);
  });

  it("gives the same statistics from both backends", async () => {
    const cases: [string, EventQuery, StatsInterval, number][] = [];
    for (const [name, q] of QUERIES) {
      for (const interval of ["hour", "day", "week", "month"] as const) cases.push([name, q, interval, interval === "day" ? 3 : 10]);
    }
    cases.push(["one day by minute", { conditions: [{ kind: "time", from: day(3), to: day(4) }] }, "minute", 5]);
    cases.push(["top 100", { conditions: [] }, "week", 100]);
    for (const tenantId of [TENANT_A, TENANT_B]) {
      for (const [name, q, interval, top] of cases) {
        const label = `${name} ${tenantId} ${interval} top ${top}`;
        const fromPg = await pgStats(pool, tenantId, q, interval, top);
        const fromEs = await esStats(es, tenantId, q, interval, top, { alias });
        expect(fromEs, label).toEqual(fromPg);
        checkStats(fromPg, all.get(tenantId)!, label);
      }
    }
    // Every minute of ~70 days is more buckets than allowed: both refuse alike.
    await expect(pgStats(pool, TENANT_A, { conditions: [] }, "minute", 5)).rejects.toBeInstanceOf(TooManyBucketsError);
    await expect(esStats(es, TENANT_A, { conditions: [] }, "minute", 5, { alias })).rejects.toBeInstanceOf(TooManyBucketsError);
  });

  function checkStats(s: Stats, records: StoredRecord[], label: string): void {
    expect(
      s.histogram.reduce((n, b) => n + b.count, 0n),
      label,
    ).toBe(s.total);
    for (let i = 1; i < s.histogram.length; i++) expect(s.histogram[i]!.start > s.histogram[i - 1]!.start, label).toBe(true);
    if (s.histogram.length) {
      expect(s.histogram[0]!.count > 0n && s.histogram.at(-1)!.count > 0n, label).toBe(true);
    }
    expect(s.top.map((t) => t.field)).toEqual(["action", "actor.id", "target.type", "severity", "outcome"]);
    for (const t of s.top) {
      for (let i = 1; i < t.values.length; i++) {
        const [a, b] = [t.values[i - 1]!, t.values[i]!];
        expect(a.count > b.count || (a.count === b.count && Buffer.compare(Buffer.from(a.value), Buffer.from(b.value)) < 0), label).toBe(
          true,
        );
      }
    }
    if (label.startsWith("everything")) expect(s.total).toBe(BigInt(records.length));
  }

  it("serves ExportEvents and GetStats through the RPC handlers", async () => {
    const validator = createValidator();
    const backend = esBackend();
    const ctx = (principal: Principal, method: "exportEvents" | "getStats") =>
      createHandlerContext({
        service: QueryService,
        method: QueryService.method[method],
        protocolName: "connect",
        requestMethod: "POST",
        url: "http://localhost/",
        contextValues: createContextValues().set(principalKey, principal),
      });
    const principal: Principal = { kind: "key", keyId: "k", tenantId: TENANT_B, scopes: new Set(["query"]) };
    // Export and stats never read the event reader. The handlers return whole messages.
    type Handlers = {
      exportEvents(req: ExportEventsRequest, ctx: HandlerContext): AsyncIterable<ExportEventsResponse>;
      getStats(req: GetStatsRequest, ctx: HandlerContext): Promise<GetStatsResponse>;
    };
    const handlers = (b: SearchBackend) => queryService({ validator, reader: {} as EventReader, backend: b }) as unknown as Handlers;
    const run = async (init: MessageInitShape<typeof ExportEventsRequestSchema>, b = backend) => {
      const parts: Uint8Array[] = [];
      for await (const m of handlers(b).exportEvents(create(ExportEventsRequestSchema, init), ctx(principal, "exportEvents"))) {
        parts.push(m.chunk);
      }
      return Buffer.concat(parts).toString("utf8");
    };
    const csv = await run({ format: ExportFormat.CSV, order: SortOrder.ASCENDING, limit: 500n, filter: { query: "action:customer.*" } });
    const rows = parseCsv(csv, { columns: true, record_delimiter: "\r\n" }) as Record<string, string>[];
    const expected = await collect(
      pgExport(pool, TENANT_B, { conditions: parseQueryString("action:customer.*") }, "asc", 500n, new AbortController().signal),
    );
    expect(rows.map((r) => r["id"])).toEqual(expected.map((r) => r.id));
    expect(rows.every((r) => r["tenant_id"] === TENANT_B)).toBe(true);
    const nd = await run({ limit: 3n });
    const newest = await collect(pgExport(pool, TENANT_B, { conditions: [] }, "desc", 3n, new AbortController().signal));
    expect(
      nd
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).sequence),
    ).toEqual(newest.map((r) => String(r.sequence)));
    await expect(run({ filter: { actions: ["Not A Pattern"] } })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(run({ filter: { query: "action:(" } })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(run({ minPosition: 5n }, esBackend({ waitForPosition: async () => false }))).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });

    const stats = await handlers(backend).getStats(
      create(GetStatsRequestSchema, { interval: StatsIntervalEnum.MONTH, top: 2 }),
      ctx(principal, "getStats"),
    );
    expect(stats.total).toBe(BigInt(COUNT_B));
    expect(stats.histogram.map((b) => new Date(Number(b.start!.seconds) * 1000).toISOString().slice(0, 7))).toEqual([
      "2026-01",
      "2026-02",
      "2026-03",
    ]); // 8,000 events, 3 per 25 minutes from 27 January
    expect(stats.top.find((t) => t.field === "severity")!.values.every((v) => v.value.startsWith("SEVERITY_"))).toBe(true);
    expect(stats.top.find((t) => t.field === "outcome")!.values.every((v) => v.value.startsWith("OUTCOME_"))).toBe(true);
    expect(stats.top.find((t) => t.field === "action")!.values).toHaveLength(2);
    await expect(
      handlers(backend).getStats(create(GetStatsRequestSchema, { interval: StatsIntervalEnum.MINUTE }), ctx(principal, "getStats")),
    ).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  describe("GET /v1/export", () => {
    let server: http.Server;
    let base: string;
    let queryKey: string;
    let ingestKey: string;

    beforeAll(async () => {
      const keys = new ApiKeyStore(pool);
      const key = async (scopes: string[]) => {
        const id = newKeyId();
        const secret = newSecret(id);
        await keys.create({ id, tenantId: TENANT_A, name: scopes.join("+"), scopes, secretHash: hashSecret(secret), expiresAt: null });
        return secret;
      };
      queryKey = await key(["query"]);
      ingestKey = await key(["ingest"]);
      const handlers = new Map<string, ReturnType<typeof exportHttpHandler>>();
      const auth = new Authenticator(keys, null, 0);
      const log = createLogger({
        level: "info",
        stream: new Writable({
          write(chunk, _enc, cb) {
            logLines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
            cb();
          },
        }),
      });
      server = http.createServer(async (req, res) => {
        // The test picks the backend per request through a header.
        const which = String(req.headers["x-test-backend"] ?? "es");
        let h = handlers.get(which);
        if (!h) handlers.set(which, (h = exportHttpHandler({ auth, backend: testBackends[which]!(), validator: createValidator(), log })));
        if (!(await h(req, res))) {
          res.writeHead(404);
          res.end("not found");
        }
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    /** Backends the test can pick per request. */
    const pulled = { batches: 0, returned: 0 };
    const testBackends: Record<string, () => SearchBackend> = {
      es: () => esBackend(),
      // Tenant A's export 20 times over, each from its own point in time.
      "es-repeated": () =>
        esBackend({
          export: async function* (t, q, d, l, s) {
            for (let round = 0; round < 20; round++) yield* esExport(es, t, q, d, l, s, { alias, batchSize: 500 });
          },
        }),
      // Fails before producing anything.
      failing: () =>
        esBackend({ export: () => ({ [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error("backend down")) }) }) }),
      // One batch (more than a chunk), then fails.
      "fails-later": () =>
        esBackend({
          export: async function* (t, q, d, l, s) {
            for await (const b of esExport(es, t, q, d, l, s, { alias, batchSize: 1000 })) {
              yield b;
              throw new Error("backend lost mid-export");
            }
          },
        }),
      // The tenant's events 40 times over, counting the batches pulled.
      endless: () =>
        esBackend({
          export: async function* (_t, _q, _d, _l, s) {
            const records = all.get(TENANT_A)!;
            try {
              for (let round = 0; round < 40; round++) {
                for (let i = 0; i < records.length; i += 500) {
                  s.throwIfAborted();
                  pulled.batches++;
                  yield records.slice(i, i + 500);
                }
              }
            } finally {
              pulled.returned++;
            }
          },
        }),
    };

    const logLines: Record<string, unknown>[] = [];
    const get = (path: string, headers: Record<string, string> = {}) => fetch(base + path, { headers });
    const auth = () => ({ authorization: `Bearer ${queryKey}` });

    it("streams a CSV file with auth", async () => {
      const r = await get(
        "/v1/export?format=csv&order=asc&action=customer.*&severity=warning&severity=SEVERITY_CRITICAL&metadata.plan=pro&limit=5000",
        auth(),
      );
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("text/csv; charset=utf-8");
      expect(r.headers.get("content-disposition")).toMatch(/^attachment; filename="auditlog-tenant-a-\d{8}T\d{6}Z\.csv"$/);
      const rows = parseCsv(await r.text(), { columns: true, record_delimiter: "\r\n" }) as Record<string, string>[];
      const q: EventQuery = {
        conditions: [
          { kind: "action", exact: [], prefixes: ["customer."] },
          { kind: "terms", field: "severity", values: ["WARNING", "CRITICAL"] },
          { kind: "metadata", path: ["plan"], values: ["pro"] },
        ],
      };
      const expected = await collect(pgExport(pool, TENANT_A, q, "asc", 5000n, new AbortController().signal));
      expect(expected.length).toBeGreaterThan(100);
      expect(rows.map((x) => `${x["id"]}|${x["sequence"]}`)).toEqual(expected.map((e) => `${e.id}|${e.sequence}`));
    });

    it("streams NDJSON by default, newest first, with the query string and time parameters", async () => {
      const after = new Date(Number(day(5) / 1000n)).toISOString();
      const before = new Date(Number(day(6) / 1000n)).toISOString();
      const r = await get(`/v1/export?actor_id=user-3&actor_id=user-4&occurred_after=${after}&occurred_before=${before}`, auth());
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("application/x-ndjson");
      const lines = (await r.text())
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l));
      // The same through the query string parameter.
      const r2 = await get(
        `/v1/export?query=${encodeURIComponent("actor.id:user-3 actor.id:user-4")}&occurred_after=${after}&occurred_before=${before}`,
        auth(),
      );
      expect(r2.status).toBe(200);
      expect(await r2.text()).toBe(lines.map((l) => JSON.stringify(l) + "\n").join(""));
      // Another tenant's event ids reach nothing: the tenant is the key's.
      const other = await get(`/v1/export?id=${TENANT_B}-ev-3&id=${TENANT_A}-ev-3`, auth());
      expect(
        (await other.text())
          .trimEnd()
          .split("\n")
          .map((l) => JSON.parse(l).tenantId + "/" + JSON.parse(l).event.id),
      ).toEqual([`${TENANT_A}/${TENANT_A}-ev-3`]);
      const expected = await collect(
        pgExport(
          pool,
          TENANT_A,
          {
            conditions: [
              { kind: "terms", field: "actor.id", values: ["user-3", "user-4"] },
              { kind: "time", from: day(5), to: day(6) },
            ],
          },
          "desc",
          null,
          new AbortController().signal,
        ),
      );
      expect(expected.length).toBeGreaterThan(0);
      expect(lines.map((l) => l.event.id)).toEqual(expected.map((e) => e.id));
    });

    it("answers 401, 403, 400, 405 as JSON before the first byte, and ignores other paths", async () => {
      let r = await get("/v1/export");
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(await r.json()).toMatchObject({ code: "unauthenticated" });
      r = await get("/v1/export", { authorization: `Bearer ${queryKey}x` });
      expect(r.status).toBe(401);
      r = await get("/v1/export", { authorization: `Bearer ${ingestKey}` });
      expect(r.status).toBe(403);
      expect(await r.json()).toMatchObject({ code: "permission_denied", message: expect.stringContaining("query") });
      for (const bad of [
        "format=xml",
        "order=up",
        "limit=-1",
        "nope=1",
        "severity=LOUD",
        "occurred_after=yesterday",
        "action=Bad%20Action",
        "format=csv&format=csv",
        "query=action%3A(",
      ]) {
        r = await get(`/v1/export?${bad}`, auth());
        expect(r.status, bad).toBe(400);
        const body = (await r.json()) as { code: string; message: string };
        expect(body.code, bad).toBe("invalid_argument");
        expect(body.message.length, bad).toBeGreaterThan(5);
      }
      r = await fetch(`${base}/v1/export`, { method: "POST", headers: auth() });
      expect(r.status).toBe(405);
      r = await get("/v1/exports", auth());
      expect(r.status).toBe(404);
      r = await get("/v1/export", { ...auth(), "x-test-backend": "failing" });
      expect(r.status).toBe(500);
      expect(await r.json()).toEqual({ code: "internal", message: "internal error" }); // no internals leak
      expect(logLines.some((l) => l["msg"] === "export failed" && JSON.stringify(l["err"]).includes("backend down"))).toBe(true);
    });

    it("aborts the connection on an error after the first byte", async () => {
      const r = await get("/v1/export?format=ndjson", { ...auth(), "x-test-backend": "fails-later" });
      expect(r.status).toBe(200);
      await expect(r.text()).rejects.toThrow();
      expect(logLines.some((l) => l["msg"] === "export failed after the first byte; connection aborted")).toBe(true);
    });

    it("pauses the backend while the client does not read, and stops it when the client leaves", async () => {
      pulled.batches = 0;
      pulled.returned = 0;
      const total = 40 * Math.ceil(COUNT_A / 500);
      const req = http.get(`${base}/v1/export?format=csv`, { headers: { ...auth(), "x-test-backend": "endless" } });
      const res = await new Promise<http.IncomingMessage>((resolve) => req.once("response", resolve));
      expect(res.statusCode).toBe(200);
      res.pause();
      await new Promise((r) => setTimeout(r, 1000));
      const whilePaused = pulled.batches;
      await new Promise((r) => setTimeout(r, 500));
      expect(pulled.batches).toBe(whilePaused); // stalled on backpressure
      expect(whilePaused).toBeLessThan(total / 4);
      // Read a little, then leave.
      res.resume();
      await new Promise((r) => setTimeout(r, 200));
      req.destroy();
      for (let i = 0; i < 50 && pulled.returned === 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(pulled.returned).toBe(1);
      expect(pulled.batches).toBeLessThan(total);
    });

    it("releases the point in time when an HTTP client disconnects mid-file", async () => {
      const baseCtx = await waitForContexts(0);
      const req = http.get(`${base}/v1/export?format=csv`, { headers: { ...auth(), "x-test-backend": "es-repeated" } });
      const res = await new Promise<http.IncomingMessage>((resolve) => req.once("response", resolve));
      expect(res.statusCode).toBe(200);
      res.pause();
      await new Promise((r) => setTimeout(r, 500));
      expect(await openContexts()).toBeGreaterThan(baseCtx); // held open by the paused download
      req.destroy();
      expect(await waitForContexts(baseCtx)).toBe(baseCtx);
    });
  });
});
