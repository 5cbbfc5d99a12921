// Erasure of a person's data against real PostgreSQL, Elasticsearch and an
// S3-compatible server: after EraseSubject (through the AdminService handler,
// in memory) the person's data is in no row, no document, no archive object
// and no export line; the chain still verifies, in PostgreSQL and in the
// archive; the erasure is in the log, with the subject hashed.
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService, EraseSubjectRequestSchema, RestoreArchiveRequestSchema } from "../../gen/auditlog/v1/admin_pb.js";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ArchiveStore } from "../../src/archive/object-store.ts";
import { subjectHash } from "../../src/domain/erasure.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { recordFromNdjsonLine } from "../../src/domain/offline-verification.ts";
import { archiveProblem, decodeArchive } from "../../src/lifecycle/archive-object.ts";
import { Erasure } from "../../src/lifecycle/erasure.ts";
import { ArchiveRestore } from "../../src/lifecycle/restore.ts";
import { LIFECYCLE_LOCK_KEY, withLifecycleLock } from "../../src/lifecycle/lifecycle-lock.ts";
import { RetentionJob } from "../../src/lifecycle/retention-job.ts";
import { createLogger } from "../../src/platform/log.ts";
import { Indexer } from "../../src/search/elasticsearch/indexer.ts";
import { indexNames } from "../../src/search/elasticsearch/index-names.ts";
import { ElasticsearchLifecycle } from "../../src/search/elasticsearch/retention-documents.ts";
import { dataLifecycleAdmin } from "../../src/services/data-lifecycle-admin.ts";
import { type Principal, principalKey } from "../../src/auth/principal.ts";
import { writeBatch } from "../../src/store/event-writer.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../src/store/event-rows.ts";
import { migrate } from "../../src/store/migrate.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { RetentionStore } from "../../src/store/retention-store.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { freshDatabase } from "../support/db.ts";
import { archiveStoreForTests, DAY, documents, dropTestIndices, verifyChain, waitIndexed, writeEvents } from "../support/lifecycle.ts";

const log = createLogger({ level: "warn", stream: process.stderr });
const NOW = new Date();
const ACTORS = ["alice", "bob", "carol"];
const asOperator: Interceptor = (next) => (req) => {
  req.contextValues.set(principalKey, { kind: "operator" } as Principal);
  return next(req);
};

describe("erasure of a person's data", () => {
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  let client: Client;
  let indexer: Indexer;
  let archive: ArchiveStore;
  let store: RetentionStore;
  const prefix = `test-erasure-${randomBytes(3).toString("hex")}`;
  const tenant = "era";

  beforeAll(async () => {
    db = await freshDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    await migrate(pool);
    await ensurePartitions(pool, new Date(NOW.getTime() - 50 * DAY), 3);
    await new TenantStore(pool).create(tenant, "E");
    // 300 events 40 days old (archived and deleted by retention), 300 recent ones.
    await writeEvents(pool, tenant, 0, 300, new Date(NOW.getTime() - 40 * DAY), (i) => ACTORS[i % 3]!);
    await writeEvents(pool, tenant, 300, 300, new Date(NOW.getTime() - DAY), (i) => ACTORS[i % 3]!);
    client = new Client({ node: inject("elasticsearchUrl") });
    indexer = new Indexer({ pool, client, log, prefix });
    indexer.start();
    await waitIndexed(pool, tenant);
    archive = archiveStoreForTests(`${prefix}/`);
    await archive.ensureBucket();
    store = new RetentionStore(pool);
    await store.setPolicy(tenant, { searchableDays: 30, keepDays: 30 });
    const search = new ElasticsearchLifecycle(client, prefix);
    const round = await new RetentionJob({ pool, store, archive, search, log, now: () => NOW }).runOnce();
    expect(round).toMatchObject({ eventsArchived: 300, eventsDeleted: 300 });
  }, 600_000);

  afterAll(async () => {
    await indexer?.stop();
    if (client) await dropTestIndices(client, prefix);
    await client?.close();
    archive?.close();
    await pool?.end();
    await db?.drop();
  });

  it("removes the person from PostgreSQL, Elasticsearch, archives and exports; the chain still verifies", async () => {
    const committed: { tenantId: string; action: string; text: string }[] = [];
    const search = new ElasticsearchLifecycle(client, prefix);
    const handlers = dataLifecycleAdmin(
      {
        validator: createValidator(),
        tenants: new TenantStore(pool),
        retention: store,
        erasure: new Erasure({ pool, store, archive, search }),
        restore: new ArchiveRestore({ pool, store, archive, search }),
        archiveConfigured: true,
        submit: async (items) => {
          for (const it of items)
            committed.push({
              tenantId: it.tenantId,
              action: it.record.action,
              text: JSON.stringify(it.record, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
            });
          return { committed: writeBatch(pool, items) };
        },
      },
      (_ctx, requested) => requested,
    );
    const transport = createRouterTransport(({ service }) => service(AdminService, handlers as never), {
      router: { interceptors: [asOperator] },
    });
    const admin = createClient(AdminService, transport);

    // The archived window back in search, checked first; alice is in it.
    const restored = await admin.restoreArchive(
      create(RestoreArchiveRequestSchema, {
        tenantId: tenant,
        from: timestampFromDate(new Date(NOW.getTime() - 41 * DAY)),
        to: timestampFromDate(new Date(NOW.getTime() - 39 * DAY)),
        days: 2,
      }),
    );
    expect(restored).toMatchObject({ events: 300n, archives: 1n });
    const withRestored = await documents(client, indexNames(prefix).alias, tenant);
    expect(withRestored).toHaveLength(600);
    expect(withRestored.filter((d) => /alice/.test(d.source))).toHaveLength(200);

    const res = await admin.eraseSubject(create(EraseSubjectRequestSchema, { tenantId: tenant, field: "actor.id", value: "alice" }));
    expect(res.eventsErased).toBe(100n); // alice's 100 live events; her 100 archived ones are in the rewritten object
    expect(res.archivesRewritten).toBe(1n);
    expect(res.subjectHash).toBe(subjectHash(res.erasureId, "actor.id", "alice"));

    // Recorded in the log, the subject only hashed.
    expect(committed).toHaveLength(1);
    expect(committed[0]).toMatchObject({ tenantId: tenant, action: "auditlog.erasure" });
    expect(committed[0]!.text).not.toMatch(/alice/i);
    expect(committed[0]!.text).toContain(res.subjectHash);

    // PostgreSQL: no row holds anything of alice.
    const rows = await pool.query<{ n: string }>("SELECT count(*) AS n FROM events e WHERE tenant_id = $1 AND e::text ILIKE '%alice%'", [
      tenant,
    ]);
    expect(rows.rows[0]!.n).toBe("0");
    const erased = await pool.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE tenant_id = $1 AND erased_at IS NOT NULL", [
      tenant,
    ]);
    expect(erased.rows[0]!.n).toBe("100");
    // Bob and Carol are untouched.
    const bob = await pool.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE tenant_id = $1 AND actor_id = 'bob'", [tenant]);
    expect(bob.rows[0]!.n).toBe("100");

    // Elasticsearch: every document is still there, none holds alice.
    await waitIndexed(pool, tenant);
    const docs = await documents(client, indexNames(prefix).alias, tenant);
    // The 300 recent events, the erasure record, and the restored events but alice's.
    expect(docs).toHaveLength(501);
    expect(docs.filter((d) => /alice/i.test(d.source))).toEqual([]);
    // The restored window goes after its day, and a retention round does not take it before.
    await new RetentionJob({ pool, store, archive, search, log, now: () => NOW }).runOnce();
    expect(await documents(client, indexNames(prefix).alias, tenant)).toHaveLength(501);
    const after = new Date(timestampDate(restored.until!).getTime() + DAY);
    expect(await search.dropExpiredRestores(after)).toHaveLength(1);
    expect(await documents(client, indexNames(prefix).alias, tenant)).toHaveLength(301);

    // The archive: rewritten without alice, still the same chain, digest in its row.
    const [a] = await store.archives(tenant);
    const body = (await archive.get(a!.objectKey))!;
    expect(archiveProblem(body, a!)).toBeNull();
    const archived = decodeArchive(body);
    expect(archived.filter((r) => r.erased)).toHaveLength(100);
    expect(JSON.stringify(archived.map(ndjsonLineOfRecord))).not.toMatch(/alice/i);
    const manifest = Buffer.from((await archive.get(`${a!.objectKey}.manifest.json`))!).toString("utf8");
    expect(JSON.parse(manifest).sha256).toBe(a!.sha256);

    // Exports: the NDJSON lines of what PostgreSQL holds name nobody erased, and read back as erased events.
    const all = await pool.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 ORDER BY sequence`, [tenant]);
    const lines = all.rows.map((r) => ndjsonLineOfRecord(recordFromRow(r)));
    expect(lines.join("")).not.toMatch(/alice/i);
    const back = lines.map((l) => recordFromNdjsonLine(l.trimEnd())).filter((r) => r.erased);
    expect(back).toHaveLength(100);
    expect(back.every((r) => /^[0-9a-f]{64}$/.test(r.contentHash))).toBe(true);

    // The chain verifies from the retention anchor over the erased events.
    const verdict = await verifyChain(pool, tenant);
    expect(verdict).toMatchObject({ ok: true, fromSequence: 301n, checked: 301n });

    // Erasing again finds nothing more; an unknown field is refused by validation.
    const again = await admin.eraseSubject(create(EraseSubjectRequestSchema, { tenantId: tenant, value: "alice" }));
    expect(again).toMatchObject({ eventsErased: 0n, archivesRewritten: 0n });
    const bad = await admin
      .eraseSubject(create(EraseSubjectRequestSchema, { tenantId: tenant, field: "message", value: "x" }))
      .catch((e) => e);
    expect(ConnectError.from(bad).code).toBe(Code.InvalidArgument);
  }, 300_000);

  it("still detects an altered erased event: its content hash is bound by the chain hash", async () => {
    await pool.query(
      "UPDATE events SET content_hash = repeat('0', 64) WHERE tenant_id = $1 AND sequence = (SELECT min(sequence) FROM events WHERE tenant_id = $1 AND erased_at IS NOT NULL)",
      [tenant],
    );
    const verdict = await verifyChain(pool, tenant);
    expect(verdict.ok).toBe(false);
    expect(verdict.broken?.reason).toMatch(/hash mismatch/);
  });

  it("a retention round skips while an erasure or restore holds the lifecycle lock", async () => {
    let round: unknown = "not run";
    await withLifecycleLock(pool, LIFECYCLE_LOCK_KEY, true, async () => {
      round = await new RetentionJob({ pool, store, archive, search: null, log, now: () => NOW }).runOnce();
    });
    expect(round).toBeNull();
    expect(await new RetentionJob({ pool, store, archive, search: null, log, now: () => NOW }).runOnce()).not.toBeNull();
  });
});
