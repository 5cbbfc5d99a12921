// The search indexer and reconciler against real PostgreSQL and real
// Elasticsearch (DESIGN.md invariant 4: the index is derived):
//  (a) concurrent writers while the indexer runs: every event indexed exactly once;
//  (b) re-delivery after progress is reset: still exactly one document per event;
//  (c) an Elasticsearch outage (a second node, stopped and restarted on the same
//      port and data): ingest never fails or blocks, lag shows, then catches up;
//  (d) the reconciler finds and repairs documents deleted and added behind the
//      service's back, and a second run finds nothing;
//  (e) a document Elasticsearch refuses for its content is recorded in
//      index_failures and skipped: its tenant's later events are indexed,
//      and other tenants go on;
//  (f) bulk bodies over the indexer's byte bound go one at a time, and all is indexed.
//
// AUDITLOG_OUTAGE_SECONDS sets the outage length of (c) (default 20; the
// done-criterion of the issue is 60).
import { randomBytes } from "node:crypto";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startElasticsearch, type RunningElasticsearch } from "../../src/devservers/elasticsearch.ts";
import type { EventRecord } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { microsFromDate } from "../../src/domain/timestamp.ts";
import { documentId, idHash } from "../../src/search/elasticsearch/event-document.ts";
import { Indexer } from "../../src/search/elasticsearch/indexer.ts";
import { indexNames, type IndexNames, type IndexTemplateBody } from "../../src/search/elasticsearch/index-names.ts";
import { ensureIndexTemplate } from "../../src/search/elasticsearch/index-setup.ts";
import { INDEX_PREFIX, indexNameFor, indexTemplate, READ_ALIAS, TEMPLATE_NAME } from "../../src/search/elasticsearch/index-template.ts";
import { Reconciler } from "../../src/search/elasticsearch/reconciler.ts";
import { createLogger } from "../../src/platform/log.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { migrate } from "../../src/store/migrate.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { freshDatabase } from "../support/db.ts";
import { makeEvent } from "../support/events.ts";

const log = createLogger({ level: (process.env.TEST_LOG_LEVEL as "warn" | undefined) ?? "warn", stream: process.stderr });
const OUTAGE_SECONDS = Number(process.env.AUDITLOG_OUTAGE_SECONDS || 20);

// ---------------------------------------------------------------------------
// helpers

function record(i: number, idPrefix: string, base: number): EventRecord {
  const e = makeEvent(i, idPrefix, base);
  return {
    id: e.id,
    occurredAt: microsFromDate(e.occurredAt),
    action: e.action,
    actor: { id: e.actor.id, type: "USER", name: e.actor.name, ip: e.actor.ip, userAgent: "vitest", sessionId: "" },
    target: e.target,
    outcome: e.outcome.replace("OUTCOME_", "") as EventRecord["outcome"],
    severity: e.severity.replace("SEVERITY_", "") as EventRecord["severity"],
    context: { requestId: e.context.requestId, traceId: "", source: e.context.source, location: "" },
    changes: i % 5 === 0 ? { before: { seats: i % 50 }, after: { seats: (i % 50) + 1 } } : null,
    metadata: e.metadata,
    message: e.message,
  };
}

function item(tenantId: string, r: EventRecord): WriteItem {
  return { tenantId, record: r, ...sealContent(r) };
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The service's own template under the test's prefix. */
async function usableTemplate(client: Client, prefix: string): Promise<IndexTemplateBody> {
  await ensureIndexTemplate(client, indexTemplate, { prefix });
  return indexTemplate;
}

async function dropIndices(client: Client, names: IndexNames): Promise<void> {
  const found = await client.indices
    .get({ index: names.pattern, ignore_unavailable: true, allow_no_indices: true, expand_wildcards: "all" })
    .catch(() => ({}));
  const list = Object.keys(found);
  if (list.length) await client.indices.delete({ index: list.join(",") }).catch(() => {});
  await client.indices.deleteIndexTemplate({ name: names.templateName }).catch(() => {});
}

type Db = { url: string; drop(): Promise<void>; pool: pg.Pool };

async function setUpDatabase(tenants: string[]): Promise<Db> {
  const db = await freshDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 16 });
  pool.on("error", () => {});
  await migrate(pool);
  await ensurePartitions(pool);
  const store = new TenantStore(pool);
  for (const t of tenants) await store.create(t, t);
  return { ...db, pool };
}

async function heads(pool: pg.Pool): Promise<Map<string, { head: bigint; indexed: bigint }>> {
  const { rows } = await pool.query<{ tenant_id: string; head: string; indexed: string }>(
    `SELECT h.tenant_id, h.sequence AS head, coalesce(p.indexed_sequence, 0) AS indexed
       FROM chain_heads h LEFT JOIN index_progress p USING (tenant_id)`,
  );
  return new Map(rows.map((r) => [r.tenant_id, { head: BigInt(r.head), indexed: BigInt(r.indexed) }]));
}

async function caughtUp(pool: pg.Pool, tenants: string[]): Promise<boolean> {
  const h = await heads(pool);
  return tenants.every((t) => h.get(t)!.head > 0n && h.get(t)!.indexed === h.get(t)!.head);
}

/** Every event of the tenant is in the index exactly once, and nothing else is. */
async function expectExactlyIndexed(client: Client, names: IndexNames, pool: pg.Pool, tenantId: string): Promise<void> {
  const head = (await heads(pool)).get(tenantId)!.head;
  await client.indices.refresh({ index: names.alias });
  const count = await client.count({ index: names.alias, routing: tenantId, query: { term: { tenant_id: tenantId } } });
  expect(BigInt(count.count)).toBe(head);
  const aggs = await client.search({
    index: names.alias,
    routing: tenantId,
    size: 0,
    query: { term: { tenant_id: tenantId } },
    aggs: {
      dupIds: { terms: { field: "id", min_doc_count: 2, size: 10 } },
      dupSeqs: { terms: { field: "sequence", min_doc_count: 2, size: 10 } },
      maxSeq: { max: { field: "sequence" } },
      minSeq: { min: { field: "sequence" } },
    },
  });
  const a = aggs.aggregations as Record<string, { value?: number; buckets?: unknown[] }>;
  expect(a.dupIds!.buckets).toEqual([]);
  expect(a.dupSeqs!.buckets).toEqual([]);
  expect(a.minSeq!.value).toBe(1);
  expect(BigInt(a.maxSeq!.value!)).toBe(head);
  // The exact statement: the set of (_id, sequence) equals PostgreSQL's.
  const docs = new Map<string, number>();
  const pit = await client.openPointInTime({ index: names.alias, keep_alive: "1m", routing: tenantId });
  let after: unknown[] | undefined;
  for (;;) {
    const r = await client.search({
      pit: { id: pit.id, keep_alive: "1m" },
      size: 10_000,
      _source: false,
      docvalue_fields: ["sequence"],
      query: { term: { tenant_id: tenantId } },
      sort: [{ _shard_doc: "asc" }],
      ...(after ? { search_after: after as never } : {}),
    });
    for (const h of r.hits.hits) docs.set(h._id!, (h.fields as { sequence: number[] }).sequence[0]!);
    if (r.hits.hits.length < 10_000) break;
    after = r.hits.hits.at(-1)!.sort;
  }
  await client.closePointInTime({ id: pit.id });
  const { rows } = await pool.query<{ id: string; sequence: string; occurred_at: string }>(
    `SELECT id, sequence FROM events WHERE tenant_id = $1`,
    [tenantId],
  );
  expect(docs.size).toBe(rows.length);
  for (const r of rows) expect(docs.get(documentId(tenantId, r.id))).toBe(Number(r.sequence));
}

function newClient(node: string): Client {
  return new Client({ node, requestTimeout: 30_000 });
}

// ---------------------------------------------------------------------------

describe("index names and checksums", () => {
  it("the default names are index-template.ts's", () => {
    const n = indexNames();
    expect(n.pattern).toBe(`${INDEX_PREFIX}*`);
    expect(n.alias).toBe(READ_ALIAS);
    expect(n.templateName).toBe(TEMPLATE_NAME);
    expect(indexTemplate.index_patterns).toEqual([n.pattern]);
    for (const t of ["2026-11-30T23:59:59.999999Z", "1999-01-01T00:00:00.000000Z"]) expect(n.indexFor(t)).toBe(indexNameFor(t));
    // By received_at, and never a name of the first layout (`x-test-2026.02`, by occurred_at).
    expect(indexNames("x-test").indexFor("2026-02-03T00:00:00.000000Z")).toBe("x-test-received-2026.02");
  });

  it("PostgreSQL's id checksum equals idHash", async () => {
    const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max: 1 });
    try {
      const ids = ["ev-1", "0192d8a4-7c1e-7b3a-9f00-0123456789ab", "ünïcødé ✓ 日本", "", "x".repeat(300)];
      const { rows } = await pool.query<{ id: string; h: string }>(
        `SELECT id, ('x' || left(md5(id), 8))::bit(32)::bigint AS h FROM unnest($1::text[]) AS id`,
        [ids],
      );
      for (const r of rows) expect(Number(r.h)).toBe(idHash(r.id));
      expect(rows.some((r) => Number(r.h) >= 2 ** 31)).toBe(true); // the upper half: unsigned on both sides
    } finally {
      await pool.end();
    }
  });
});

describe("search indexer and reconciler", () => {
  const esUrl = inject("elasticsearchUrl");
  const names = indexNames(`itest-${randomBytes(4).toString("hex")}`);
  const tenants = ["alpha", "beta", "gamma"];
  let client: Client;
  let db: Db;
  let template: IndexTemplateBody;
  let indexer: Indexer;
  let standby: Indexer;

  beforeAll(async () => {
    client = newClient(esUrl);
    db = await setUpDatabase(tenants);
    template = await usableTemplate(client, names.prefix);
    indexer = new Indexer({ pool: db.pool, client, log, prefix: names.prefix, template, lockRetryMs: 500 });
    standby = new Indexer({ pool: db.pool, client, log, prefix: names.prefix, template, lockRetryMs: 500 });
    indexer.start();
    await waitFor("the indexer lock", async () => indexer.isLeader(), 10_000, 50);
    standby.start();
  });
  afterAll(async () => {
    await standby?.stop();
    await indexer?.stop();
    await dropIndices(client, names);
    await db?.pool.end();
    await db?.drop();
    await client?.close();
  });

  it("(a) indexes every event of concurrent writers exactly once", async () => {
    const base = Date.UTC(2026, 9, 31, 20); // spans Oct 31 -> Nov 1: two monthly indices
    const loops = 8;
    const batches = 30;
    const perBatch = 100;
    let n = 0;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: loops }, async (_, loop) => {
        for (let b = 0; b < batches; b++) {
          const items: WriteItem[] = [];
          for (let k = 0; k < perBatch; k++) {
            const i = n++;
            // Mostly one tenant per batch, every third batch mixes both.
            const tenant = b % 3 === 2 ? (k % 2 ? "alpha" : "beta") : loop % 2 ? "alpha" : "beta";
            items.push(item(tenant, record(i, `w${loop}`, base)));
          }
          const res = await writeBatch(db.pool, items);
          expect(res.every((r) => r.status === "accepted")).toBe(true);
        }
      }),
    );
    expect(n).toBe(loops * batches * perBatch);
    const written = Date.now();
    await waitFor("the indexer to catch up", () => caughtUp(db.pool, ["alpha", "beta"]), 60_000);
    process.stderr.write(
      `[indexer.test] (a) ${n} events written in ${written - t0} ms by ${loops} writers; index caught up ${Date.now() - written} ms after the last write\n`,
    );
    const h = await heads(db.pool);
    expect(h.get("alpha")!.head + h.get("beta")!.head).toBe(BigInt(n));
    await expectExactlyIndexed(client, names, db.pool, "alpha");
    await expectExactlyIndexed(client, names, db.pool, "beta");
    // Only one of the two indexers works.
    expect([indexer.isLeader(), standby.isLeader()]).toEqual([true, false]);
    expect(standby.getStats().eventsIndexed).toBe(0);
    const status = await indexer.statusFor("alpha");
    expect(status).toMatchObject({ backend: "elasticsearch", lagEvents: 0n, lagSeconds: 0 });
    expect(status.indexedPosition).toBe(h.get("alpha")!.head);
  }, 120_000);

  it("(b) re-delivery after a progress reset writes no duplicate", async () => {
    const before = indexer.getStats().eventsIndexed;
    await db.pool.query("UPDATE index_progress SET indexed_sequence = 0");
    const st = await indexer.statusFor("alpha");
    expect(st.lagEvents).toBeGreaterThan(0n);
    expect(st.lagSeconds).toBeGreaterThan(0);
    await waitFor("the indexer to catch up again", () => caughtUp(db.pool, ["alpha", "beta"]), 60_000);
    const h = await heads(db.pool);
    expect(indexer.getStats().eventsIndexed - before).toBeGreaterThanOrEqual(Number(h.get("alpha")!.head + h.get("beta")!.head));
    await expectExactlyIndexed(client, names, db.pool, "alpha");
    await expectExactlyIndexed(client, names, db.pool, "beta");
  }, 120_000);

  it("(d) the reconciler repairs documents deleted and added behind the service's back", async () => {
    const tenant = "alpha";
    const { rows } = await db.pool.query<{ id: string; sequence: string; occurred_at: string; received_at: string }>(
      `SELECT id, sequence, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_at,
              to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS received_at
         FROM events WHERE tenant_id = $1 AND sequence IN (5, 777, 2000, 4321, 6000) ORDER BY sequence`,
      [tenant],
    );
    expect(rows).toHaveLength(5);
    for (const r of rows) {
      await client.delete({ index: names.indexFor(r.received_at), id: documentId(tenant, r.id), routing: tenant });
    }
    // A document for an event that does not exist, in a window with events, below indexed_sequence.
    const bogusAt = rows[2]!.occurred_at;
    await client.index({
      index: names.indexFor(rows[2]!.received_at),
      id: documentId(tenant, "bogus-1"),
      routing: tenant,
      document: {
        tenant_id: tenant,
        id: "bogus-1",
        sequence: 3,
        occurred_at: bogusAt,
        action: "x.y",
        message: "bogus",
        id_hash: idHash("bogus-1"),
      },
    });
    // One that claims a sequence far above the chain head.
    await client.index({
      index: names.indexFor(rows[2]!.received_at),
      id: documentId(tenant, "bogus-2"),
      routing: tenant,
      document: { tenant_id: tenant, id: "bogus-2", sequence: 10_000_000, occurred_at: bogusAt, id_hash: idHash("bogus-2") },
    });
    await client.indices.refresh({ index: names.alias });

    const reconciler = new Reconciler({ pool: db.pool, client, log, prefix: names.prefix });
    const first = await reconciler.reconcileTenant(tenant, { window: "hour" });
    const windowsHit = new Set(rows.map((r) => r.occurred_at.slice(0, 13))).size;
    expect(first.windowsWithGaps).toBe(windowsHit);
    expect(first.windowsChecked).toBeGreaterThanOrEqual(windowsHit);
    expect(first.eventsRepaired).toBe(5);
    expect(first.documentsRemoved).toBe(2);
    expect(first.details.gaps.flatMap((g) => g.missingIds).sort()).toEqual(rows.map((r) => r.id).sort());
    expect(first.details.gaps.flatMap((g) => g.removedIds)).toEqual([documentId(tenant, "bogus-1")]);
    expect(first.details.beyondIndexed.removedIds).toEqual([documentId(tenant, "bogus-2")]);
    await expectExactlyIndexed(client, names, db.pool, tenant);

    const second = await reconciler.reconcileTenant(tenant, { window: "day" });
    expect(second).toMatchObject({ windowsWithGaps: 0, eventsRepaired: 0, documentsRemoved: 0 });
    expect(second.windowsChecked).toBe(2); // Oct 31 and Nov 1
    const status = await indexer.statusFor(tenant);
    expect(status.lastReconcile).toEqual({
      finishedAt: second.finishedAt,
      windowsChecked: 2n,
      windowsWithGaps: 0n,
      eventsRepaired: 0n,
      documentsRemoved: 0n,
    });
    const stored = await db.pool.query("SELECT windows_with_gaps, details FROM reconcile_reports WHERE id = $1", [first.id.toString()]);
    expect(stored.rows[0].windows_with_gaps).toBe(String(windowsHit));
    expect(stored.rows[0].details.gaps).toHaveLength(windowsHit);

    // The periodic round covers every tenant and takes its lock.
    expect(await reconciler.reconcileAll()).toBe(true);
    const reports = await db.pool.query("SELECT DISTINCT tenant_id FROM reconcile_reports ORDER BY 1");
    expect(reports.rows.map((r) => r.tenant_id)).toEqual(tenants);
    await reconciler.stop();
  }, 120_000);

  it("(e) a document Elasticsearch refuses for its content is recorded and skipped; later events and other tenants go on", async () => {
    const base = Date.UTC(2026, 10, 2);
    const good = Array.from({ length: 10 }, (_, i) => item("gamma", record(i, "g", base)));
    // date_nanos cannot hold a time before 1970: Elasticsearch refuses this document.
    const bad = item("gamma", { ...record(10, "g", base), occurredAt: microsFromDate(new Date(Date.UTC(1965, 0, 1))) });
    const after = Array.from({ length: 5 }, (_, i) => item("gamma", record(11 + i, "g", base)));
    await writeBatch(db.pool, [...good, bad, ...after]);
    await writeBatch(db.pool, [item("beta", record(0, "late", base))]);
    await waitFor("beta and gamma to be indexed", () => caughtUp(db.pool, ["beta", "gamma"]), 30_000);
    expect(indexer.stuckTenants()).toEqual([]);
    const st = await indexer.statusFor("gamma");
    expect(st).toMatchObject({ indexedPosition: 16n, committedPosition: 16n, lagEvents: 0n, refusedDocuments: 1n });
    expect(st.recentRefusals).toEqual([
      {
        sequence: 11n,
        eventId: bad.record.id,
        reason: expect.stringMatching(/document_parsing_exception|mapper_parsing_exception/),
        refusedAt: expect.any(Date),
      },
    ]);
    // The events after it are searchable; it is not.
    await client.indices.refresh({ index: names.alias });
    const docs = await client.search({
      index: names.alias,
      routing: "gamma",
      size: 100,
      _source: ["id"],
      query: { term: { tenant_id: "gamma" } },
    });
    const ids = docs.hits.hits.map((h) => (h._source as { id: string }).id).sort();
    expect(ids).toEqual([...good, ...after].map((x) => x.record.id).sort());

    // Re-delivery refuses it again: one row, still progress past it.
    await db.pool.query("UPDATE index_progress SET indexed_sequence = 0 WHERE tenant_id = 'gamma'");
    await waitFor("gamma to be indexed again", () => caughtUp(db.pool, ["gamma"]), 30_000);
    expect((await db.pool.query("SELECT sequence FROM index_failures WHERE tenant_id = 'gamma'")).rows).toEqual([{ sequence: "11" }]);
    // The reconciler does not count the refused event as missing (or it would retry it every round).
    const report = await new Reconciler({ pool: db.pool, client, log, prefix: names.prefix }).reconcileTenant("gamma");
    expect(report).toMatchObject({ windowsWithGaps: 0, eventsRepaired: 0, documentsRemoved: 0 });
  }, 90_000);
});

describe("search indexer memory bound", () => {
  const esUrl = inject("elasticsearchUrl");
  const names = indexNames(`mtest-${randomBytes(4).toString("hex")}`);
  let client: Client;
  let db: Db;
  let indexer: Indexer | undefined;
  afterAll(async () => {
    await indexer?.stop();
    await dropIndices(client, names);
    await db?.pool.end();
    await db?.drop();
    await client?.close();
  });

  it("bulk bodies over maxInflightBytes: one request at a time, every event indexed exactly once", async () => {
    client = newClient(esUrl);
    db = await setUpDatabase(["delta"]);
    const base = Date.UTC(2026, 10, 20);
    for (let b = 0; b < 10; b++) {
      await writeBatch(
        db.pool,
        Array.from({ length: 100 }, (_, k) => item("delta", record(b * 100 + k, "m", base))),
      );
    }
    // The real client, counting the bulk requests it has in flight.
    let inFlight = 0;
    let most = 0;
    const bulk = client.bulk.bind(client);
    client.bulk = (async (...args: Parameters<typeof bulk>) => {
      most = Math.max(most, ++inFlight);
      try {
        return await bulk(...args);
      } finally {
        inFlight--;
      }
    }) as typeof client.bulk;
    const template = await usableTemplate(client, names.prefix);
    indexer = new Indexer({ pool: db.pool, client, log, prefix: names.prefix, template, batchSize: 100, maxInflightBytes: 1 });
    indexer.start();
    await waitFor("the indexer to catch up", () => caughtUp(db.pool, ["delta"]), 60_000);
    await expectExactlyIndexed(client, names, db.pool, "delta");
    expect(indexer.getStats().bulkRequests).toBeGreaterThanOrEqual(10);
    expect(most).toBe(1);
  }, 90_000);
});

describe("search indexer during an Elasticsearch outage", () => {
  let es: RunningElasticsearch | null = null;
  let dataDir: string;
  let client: Client;
  let db: Db;
  let indexer: Indexer;
  const names = indexNames(`otest-${randomBytes(4).toString("hex")}`);

  beforeAll(async () => {
    dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), "auditlog-es-outage-"));
    await fsp.chmod(dataDir, 0o777); // Elasticsearch runs as an unprivileged user when we are root
    [es, db] = await Promise.all([
      startElasticsearch({ dataDir, keepData: true, fastStartup: true, log: (m) => process.stderr.write(`[outage-es] ${m}\n`) }),
      setUpDatabase(["outage"]),
    ]);
    client = newClient(es.url);
  });
  afterAll(async () => {
    await indexer?.stop();
    await client?.close();
    await es?.stop();
    await db?.pool.end();
    await db?.drop();
    await fsp.rm(dataDir, { recursive: true, force: true }).catch(() => {});
  });

  it(
    `keeps ingesting through a ${OUTAGE_SECONDS} s outage and catches up after it`,
    async () => {
      const template = await usableTemplate(client, names.prefix);
      indexer = new Indexer({ pool: db.pool, client, log, prefix: names.prefix, template });
      indexer.start();

      // Steady ingest: 100 events every 50 ms (about 2000/s), each call timed.
      const base = Date.UTC(2026, 10, 15);
      let i = 0;
      let writing = true;
      const calls: { at: number; ms: number; ok: boolean; err?: string }[] = [];
      const writer = (async () => {
        while (writing) {
          const items = Array.from({ length: 100 }, () => item("outage", record(i++, "o", base)));
          const t0 = performance.now();
          try {
            await writeBatch(db.pool, items);
            calls.push({ at: Date.now(), ms: performance.now() - t0, ok: true });
          } catch (err) {
            calls.push({ at: Date.now(), ms: performance.now() - t0, ok: false, err: String(err) });
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })();

      await waitFor("some events indexed", async () => (await indexer.statusFor("outage")).indexedPosition > 1000n, 30_000);
      const port = es!.port;
      const outageStart = Date.now();
      await es!.stop();
      es = null;
      const downAt = Date.now(); // stopping takes a few seconds: the outage counts from when it is down
      let maxLag = 0n;
      let maxLagSeconds = 0;
      while (Date.now() - downAt < OUTAGE_SECONDS * 1000) {
        const st = await indexer.statusFor("outage");
        if (st.lagEvents > maxLag) maxLag = st.lagEvents;
        if (st.lagSeconds > maxLagSeconds) maxLagSeconds = st.lagSeconds;
        await new Promise((r) => setTimeout(r, 500));
      }
      const during = await indexer.statusFor("outage");
      process.stderr.write(
        `[indexer.test] Elasticsearch stopped in ${downAt - outageStart} ms, down for ${Date.now() - downAt} ms, restarting\n`,
      );
      es = await startElasticsearch({
        dataDir,
        port,
        keepData: true,
        fastStartup: true,
        log: (m) => process.stderr.write(`[outage-es] ${m}\n`),
      });
      const outageEnd = Date.now();
      await new Promise((r) => setTimeout(r, 2000)); // some ingest after the restart too
      writing = false;
      await writer;

      const outageCalls = calls.filter((c) => c.at >= outageStart && c.at <= outageEnd);
      expect(calls.filter((c) => !c.ok)).toEqual([]);
      expect(outageCalls.length).toBeGreaterThan(OUTAGE_SECONDS * 5); // ~14/s when nothing blocks
      const slowest = Math.max(...outageCalls.map((c) => c.ms));
      expect(slowest).toBeLessThan(5000); // a blocked write would wait for the whole outage
      expect(during.lagEvents).toBeGreaterThan(0n);
      expect(maxLag).toBeGreaterThan(BigInt(OUTAGE_SECONDS * 200));
      expect(maxLagSeconds).toBeGreaterThan(OUTAGE_SECONDS / 2);

      const t0 = Date.now();
      await waitFor("the index to catch up after the outage", () => caughtUp(db.pool, ["outage"]), 120_000, 250);
      const catchUpMs = Date.now() - t0;
      const after = await indexer.statusFor("outage");
      expect(after).toMatchObject({ lagEvents: 0n, lagSeconds: 0 });
      expect(after.committedPosition).toBe(BigInt(i));
      await expectExactlyIndexed(client, names, db.pool, "outage");
      process.stderr.write(
        `[indexer.test] outage ${OUTAGE_SECONDS} s: ${outageCalls.length} writeBatch calls during it, slowest ${slowest.toFixed(0)} ms; ` +
          `max lag ${maxLag} events / ${maxLagSeconds.toFixed(1)} s; caught up ${catchUpMs} ms after Elasticsearch was back\n`,
      );
    },
    240_000 + OUTAGE_SECONDS * 1000,
  );
});
