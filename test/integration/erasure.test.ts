// Erasure of a person's data against real PostgreSQL, Elasticsearch and an
// S3-compatible server: after EraseSubject (through the AdminService handler,
// in memory) the person's data is in no row, no document, no archive object
// and no export line; the chain still verifies, in PostgreSQL, in the search
// documents and in the archive; the erasure is in the log, with the subject
// hashed. Every event is salted, an erased one keeps only a content hash no
// guess can be checked against, and subjects can be any envelope field, a
// metadata path or a value anywhere.
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { type Client as RpcClient, Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService, EraseSubjectRequestSchema, RestoreArchiveRequestSchema } from "../../gen/auditlog/v1/admin_pb.js";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ArchiveStore } from "../../src/archive/object-store.ts";
import { subjectHash } from "../../src/domain/erasure.ts";
import type { EventRecord } from "../../src/domain/event-record.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { ChainVerifier, contentDigest, contentHash, sealContent } from "../../src/domain/hash-chain.ts";
import { recordFromNdjsonLine } from "../../src/domain/offline-verification.ts";
import { archiveProblem, decodeArchive } from "../../src/lifecycle/archive-object.ts";
import { Erasure } from "../../src/lifecycle/erasure.ts";
import { ArchiveRestore } from "../../src/lifecycle/restore.ts";
import { LIFECYCLE_LOCK_KEY, withLifecycleLock } from "../../src/lifecycle/lifecycle-lock.ts";
import { RetentionJob } from "../../src/lifecycle/retention-job.ts";
import { createLogger } from "../../src/platform/log.ts";
import { Indexer } from "../../src/search/elasticsearch/indexer.ts";
import { indexNames } from "../../src/search/elasticsearch/index-names.ts";
import { type EventDocument, recordFromDocument } from "../../src/search/elasticsearch/event-document.ts";
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
import {
  archiveStoreForTests,
  DAY,
  documents,
  dropTestIndices,
  record,
  verifyChain,
  waitIndexed,
  writeEvents,
} from "../support/lifecycle.ts";

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
  let admin: RpcClient<typeof AdminService>;
  /** What the handler submitted to the log (the erasure records). */
  const committed: { tenantId: string; action: string; text: string }[] = [];
  const prefix = `test-erasure-${randomBytes(3).toString("hex")}`;
  const tenant = "era";
  /** Event ev-i as it was written (before any erasure). */
  const original = (i: number): EventRecord => record(i, ACTORS[i % 3]!, new Date(NOW.getTime() - (i < 300 ? 40 : 1) * DAY));

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
    admin = createClient(AdminService, transport);
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
    const search = new ElasticsearchLifecycle(client, prefix);

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
    // Read back, the lines verify as the chain from the anchor: the others by their salts, the erased by their kept hashes
    // (a line carries no content hash but an erased one's: it is recomputed, as the offline verifier does).
    const anchor = (await store.anchor(tenant))!;
    const walk = new ChainVerifier(anchor.sequence + 1n, anchor.hash);
    for (const l of lines) {
      const r = recordFromNdjsonLine(l.trimEnd());
      expect(walk.next(r.erased ? r : { ...r, contentHash: contentHash(r) })).toBeNull();
    }

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

  it("salts every event; an erased one keeps a content hash no guess can be checked against, and its id answers DUPLICATE to any retry", async () => {
    const rows = await pool.query<{ id: string; salt: string | null; content_hash: string; erased: boolean; digest: string }>(
      `SELECT e.id, e.salt, e.content_hash, e.erased_at IS NOT NULL AS erased, i.content_hash AS digest
         FROM events e JOIN event_ids i ON i.tenant_id = e.tenant_id AND i.event_id = e.id
        WHERE e.tenant_id = $1 AND e.id LIKE 'ev-%'`,
      [tenant],
    );
    expect(rows.rows).toHaveLength(300);
    for (const r of rows.rows) {
      const intact = original(Number(r.id.slice(3)));
      if (r.erased) {
        // Salt and digest are gone with the content; the kept hash is not the hash of the content alone.
        expect(r.salt).toBeNull();
        expect(r.digest).toBe("");
        expect(r.content_hash).not.toBe(contentDigest(intact));
      } else {
        expect(r.salt).toMatch(/^[0-9a-f]{32}$/);
        expect(r.content_hash).toBe(contentHash({ ...intact, salt: r.salt! }));
        expect(r.digest).toBe(contentDigest(intact));
      }
    }
    // Alice's archived events lost their digests too.
    const archivedIds = await pool.query<{ n: string }>(
      "SELECT count(*) AS n FROM event_ids WHERE tenant_id = $1 AND content_hash = '' AND sequence <= 300",
      [tenant],
    );
    expect(archivedIds.rows[0]!.n).toBe("100");

    // Retries: an erased id is a duplicate whatever its content (live: ev-300, archived: ev-0); a kept one is compared.
    const item = (r: EventRecord) => ({ tenantId: tenant, record: r, ...sealContent(r) });
    const results = await writeBatch(pool, [
      item(original(300)),
      item({ ...original(300), message: "a guess" }),
      item({ ...original(0), actor: { ...original(0).actor, name: "a guess" } }),
      item(original(301)),
      item({ ...original(301), message: "other content" }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["duplicate", "duplicate", "duplicate", "duplicate", "conflict"]);
  });

  it("erases a value wherever it appears: envelope fields, metadata, changes, and a kept field that holds it", async () => {
    const now = new Date();
    const base = record(600, "erin", now);
    const dave: EventRecord[] = [
      { ...base, id: "dave-1", target: { type: "invoice", id: "inv-1", name: "dave" } },
      { ...base, id: "dave-2", metadata: { contact: { who: "dave" } } },
      { ...base, id: "dave-3", changes: { before: null, after: { owner: "dave" } } },
      { ...base, id: "dave-4", context: { ...base.context, requestId: "dave" } },
      { ...base, id: "dave-5", metadata: { tags: ["x", "dave"] } },
      { ...base, id: "not-dave", metadata: { note: "david" }, message: "not him" },
      { ...base, id: "phone", metadata: { phone: 4915112345678, n: 1.5 } },
    ].map((r) => ({ ...r, occurredAt: BigInt(now.getTime()) * 1000n }));
    const results = await writeBatch(
      pool,
      dave.map((r) => ({ tenantId: tenant, record: r, ...sealContent(r) })),
    );
    expect(results.every((r) => r.status === "accepted")).toBe(true);
    await waitIndexed(pool, tenant);

    const bad = await admin
      .eraseSubject(create(EraseSubjectRequestSchema, { tenantId: tenant, field: "metadata.", value: "dave" }))
      .catch((e) => e);
    expect(ConnectError.from(bad).code).toBe(Code.InvalidArgument);

    const res = await admin.eraseSubject(create(EraseSubjectRequestSchema, { tenantId: tenant, field: "*", value: "dave" }));
    expect(res).toMatchObject({ eventsErased: 5n, archivesRewritten: 0n });
    expect(res.subjectHash).toBe(subjectHash(res.erasureId, "*", "dave"));
    const erased = await pool.query<{ id: string; request_id: string; erased: boolean }>(
      "SELECT id, request_id, erased_at IS NOT NULL AS erased FROM events WHERE tenant_id = $1 AND id LIKE '%dave%' ORDER BY id",
      [tenant],
    );
    expect(erased.rows.map((r) => [r.id, r.erased])).toEqual([
      ["dave-1", true],
      ["dave-2", true],
      ["dave-3", true],
      ["dave-4", true],
      ["dave-5", true],
      ["not-dave", false],
    ]);
    // The request id is kept by erasures, but this one was the value erased.
    expect(erased.rows.find((r) => r.id === "dave-4")!.request_id).toBe("");
    // Nothing of dave is left but the ids this test gave the events.
    const rows = await pool.query<{ n: string }>(
      "SELECT count(*) AS n FROM events e WHERE tenant_id = $1 AND replace(e::text, id, '') LIKE '%dave%'",
      [tenant],
    );
    expect(rows.rows[0]!.n).toBe("0");

    await waitIndexed(pool, tenant);
    const docs = await documents(client, indexNames(prefix).alias, tenant);
    expect(docs.filter((d) => d.source.includes('"dave"'))).toEqual([]);
    expect(docs.filter((d) => d.source.includes("david"))).toHaveLength(1);
    expect(await verifyChain(pool, tenant)).toMatchObject({ ok: true });

    // A number is found by its text.
    const phone = await admin.eraseSubject(
      create(EraseSubjectRequestSchema, { tenantId: tenant, field: "metadata.phone", value: "4915112345678" }),
    );
    expect(phone.eventsErased).toBe(1n);
    const byNumber = await pool.query<{ id: string }>(
      "SELECT id FROM events WHERE tenant_id = $1 AND erased_at IS NOT NULL AND id NOT LIKE 'ev-%' AND action <> 'auditlog.erasure'",
      [tenant],
    );
    expect(byNumber.rows.map((r) => r.id).sort()).toEqual(["dave-1", "dave-2", "dave-3", "dave-4", "dave-5", "phone"]);
  });

  it("erases by a metadata path in PostgreSQL, in the archive and in restored documents", async () => {
    const search = new ElasticsearchLifecycle(client, prefix);
    const restored = await admin.restoreArchive(
      create(RestoreArchiveRequestSchema, {
        tenantId: tenant,
        from: timestampFromDate(new Date(NOW.getTime() - 41 * DAY)),
        to: timestampFromDate(new Date(NOW.getTime() - 39 * DAY)),
        days: 2,
      }),
    );
    expect(restored.events).toBe(300n);
    const alias = indexNames(prefix).alias;
    expect((await documents(client, alias, tenant)).filter((d) => d.source.includes("bob@example.com"))).toHaveLength(200);

    const res = await admin.eraseSubject(
      create(EraseSubjectRequestSchema, { tenantId: tenant, field: "metadata.email", value: "bob@example.com" }),
    );
    expect(res).toMatchObject({ eventsErased: 100n, archivesRewritten: 1n });

    const rows = await pool.query<{ n: string }>("SELECT count(*) AS n FROM events e WHERE tenant_id = $1 AND e::text LIKE '%bob%'", [
      tenant,
    ]);
    expect(rows.rows[0]!.n).toBe("0");
    const digests = await pool.query<{ n: string }>("SELECT count(*) AS n FROM event_ids WHERE tenant_id = $1 AND content_hash = ''", [
      tenant,
    ]);
    expect(digests.rows[0]!.n).toBe("406"); // alice 200, dave 5, phone 1, bob 200

    const [a] = await store.archives(tenant);
    const body = (await archive.get(a!.objectKey))!;
    expect(archiveProblem(body, a!)).toBeNull();
    const archived = decodeArchive(body);
    expect(archived.filter((r) => r.erased)).toHaveLength(200);
    expect(archived.filter((r) => r.erased).every((r) => r.salt === undefined)).toBe(true);
    expect(archived.filter((r) => !r.erased).every((r) => /^[0-9a-f]{32}$/.test(r.salt ?? ""))).toBe(true);
    expect(archived.map(ndjsonLineOfRecord).join("")).not.toMatch(/bob/);

    await waitIndexed(pool, tenant);
    const docs = await documents(client, alias, tenant);
    expect(docs.filter((d) => /bob/.test(d.source))).toEqual([]);
    // Carol's restored documents stay.
    expect(docs.filter((d) => d.source.includes("carol@example.com")).length).toBeGreaterThan(100);
    expect(await search.dropExpiredRestores(new Date(timestampDate(restored.until!).getTime() + DAY))).toHaveLength(1);
  });

  it("erases by a kept field in the archive: the field goes with the personal content", async () => {
    const res = await admin.eraseSubject(
      create(EraseSubjectRequestSchema, { tenantId: tenant, field: "context.request_id", value: "req-5" }),
    );
    expect(res).toMatchObject({ eventsErased: 0n, archivesRewritten: 1n });
    const [a] = await store.archives(tenant);
    const archived = decodeArchive((await archive.get(a!.objectKey))!);
    const ev5 = archived.find((r) => r.id === "ev-5")!;
    expect(ev5).toMatchObject({ erased: true, context: { requestId: "", source: "billing", location: "" } });
    expect(archived.map(ndjsonLineOfRecord).join("")).not.toContain('"req-5"');
  });

  it("the search documents carry salts and erased hashes: they verify as the chain", async () => {
    await waitIndexed(pool, tenant);
    const anchor = (await store.anchor(tenant))!;
    const res = await client.search<EventDocument>({
      index: indexNames(prefix).alias,
      routing: tenant,
      size: 10_000,
      query: { term: { tenant_id: tenant } },
      sort: [{ sequence: "asc" }],
    });
    const records = res.hits.hits.map((h) => recordFromDocument(h._source!));
    expect(records[0]!.sequence).toBe(anchor.sequence + 1n);
    expect(records.filter((r) => r.erased).length).toBe(206); // alice 100, dave 5, phone 1, bob 100 of the live rows
    expect(records.filter((r) => !r.erased).every((r) => /^[0-9a-f]{32}$/.test(r.salt ?? ""))).toBe(true);
    const v = new ChainVerifier(anchor.sequence + 1n, anchor.hash);
    for (const r of records) expect(v.next(r)).toBeNull();
    expect(await verifyChain(pool, tenant)).toMatchObject({ ok: true, checked: BigInt(records.length) });
  });

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
