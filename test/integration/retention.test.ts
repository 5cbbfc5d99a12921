// Retention and archival against real PostgreSQL, Elasticsearch and an
// S3-compatible server (s3proxy): 100,000 events of which a known share has
// expired are archived, deleted from PostgreSQL and Elasticsearch, exactly;
// a round that fails at each step (as a kill would) is finished by the next;
// the chain still verifies from the anchor; the reconciler does not re-index
// what retention removed.
import { randomBytes } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { QueryService, VerifyChainRequestSchema } from "../../gen/auditlog/v1/query_pb.js";
import type { ArchiveStore } from "../../src/archive/object-store.ts";
import { type Principal, principalKey } from "../../src/auth/principal.ts";
import { verifyArchivedChain } from "../../src/lifecycle/archived-chain.ts";
import type { SearchBackend } from "../../src/search/backend.ts";
import { queryService } from "../../src/services/query-service.ts";
import { EventReader } from "../../src/store/event-reader.ts";
import { archiveProblem, decodeArchive } from "../../src/lifecycle/archive-object.ts";
import { type RetentionStep, RetentionJob } from "../../src/lifecycle/retention-job.ts";
import { createLogger } from "../../src/platform/log.ts";
import { Indexer } from "../../src/search/elasticsearch/indexer.ts";
import { indexNames } from "../../src/search/elasticsearch/index-names.ts";
import { Reconciler } from "../../src/search/elasticsearch/reconciler.ts";
import { ElasticsearchLifecycle } from "../../src/search/elasticsearch/retention-documents.ts";
import { migrate } from "../../src/store/migrate.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { RetentionStore } from "../../src/store/retention-store.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { freshDatabase } from "../support/db.ts";
import { archiveStoreForTests, DAY, documents, dropTestIndices, verifyChain, waitIndexed, writeEvents } from "../support/lifecycle.ts";

const log = createLogger({ level: "warn", stream: process.stderr });
const NOW = new Date(Date.UTC(2026, 10, 30, 12));
const BATCHES = 20;
const PER_BATCH = 5_000;
const TOTAL = BATCHES * PER_BATCH; // 100,000
// Batch i is received (30 - i) days and 12 hours before NOW: with keep_days 19
// batches 0..11 have expired (60,000 events: batch 11 is 19.5 days old), with
// searchable_days 15 batches 0..15 left the search window (80,000 events).
const KEEP_DAYS = 19;
const SEARCHABLE_DAYS = 15;
const EXPIRED = 12 * PER_BATCH;
const UNSEARCHABLE = 16 * PER_BATCH;

describe("retention: 100,000 events, a known share expired", () => {
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  let client: Client;
  let indexer: Indexer;
  let archive: ArchiveStore;
  let store: RetentionStore;
  const prefix = `test-retention-${randomBytes(3).toString("hex")}`;
  const objectPrefix = `${prefix}/`;
  const tenant = "ret-a";
  const other = "ret-b";

  beforeAll(async () => {
    db = await freshDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 6 });
    await migrate(pool);
    await ensurePartitions(pool, new Date(NOW.getTime() - 31 * DAY), 2);
    const tenants = new TenantStore(pool);
    await tenants.create(tenant, "A");
    await tenants.create(other, "B");
    for (let b = 0; b < BATCHES; b++) {
      const at = new Date(NOW.getTime() - (30 - b) * DAY - DAY / 2);
      await writeEvents(pool, tenant, b * PER_BATCH, PER_BATCH, at, (i) => `user-${i % 13}`);
    }
    await writeEvents(pool, other, 0, 500, new Date(NOW.getTime() - 60 * DAY), (i) => `user-${i % 13}`);
    client = new Client({ node: inject("elasticsearchUrl") });
    indexer = new Indexer({ pool, client, log, prefix });
    indexer.start();
    await waitIndexed(pool, tenant);
    await waitIndexed(pool, other);
    archive = archiveStoreForTests(objectPrefix);
    await archive.ensureBucket();
    store = new RetentionStore(pool);
  }, 900_000);

  afterAll(async () => {
    await indexer?.stop();
    if (client) await dropTestIndices(client, prefix);
    await client?.close();
    archive?.close();
    await pool?.end();
    await db?.drop();
  });

  function job(onStep?: (step: RetentionStep) => void) {
    return new RetentionJob({
      pool,
      store,
      archive,
      search: new ElasticsearchLifecycle(client, prefix),
      log,
      now: () => NOW,
      batchSize: 10_000,
      deleteChunk: 2_500,
      onStep: onStep ? (step) => onStep(step) : undefined,
    });
  }

  it("archives exactly the expired events, deletes exactly them, and survives a failure at every step", async () => {
    await store.setPolicy(tenant, { searchableDays: SEARCHABLE_DAYS, keepDays: KEEP_DAYS });
    // One round per step, each failing the first time it reaches that step.
    const steps: RetentionStep[] = ["archived", "recorded", "chunk-deleted", "postgres-deleted", "search-deleted"];
    for (const failAt of steps) {
      await expect(
        job((step) => {
          if (step === failAt) throw new Error(`killed at ${failAt}`);
        }).runOnce(),
      ).rejects.toThrow(`killed at ${failAt}`);
    }
    const last = await job().runOnce();
    expect(last).not.toBeNull();
    // A further round finds nothing more to do.
    const again = await job().runOnce();
    expect(again).toMatchObject({ archivesWritten: 0, eventsDeleted: 0 });

    // PostgreSQL: exactly the unexpired events remain; the other tenant is untouched.
    const left = await pool.query<{ n: string; lo: string; hi: string }>(
      "SELECT count(*) AS n, min(sequence) AS lo, max(sequence) AS hi FROM events WHERE tenant_id = $1",
      [tenant],
    );
    expect(left.rows[0]).toEqual({ n: String(TOTAL - EXPIRED), lo: String(EXPIRED + 1), hi: String(TOTAL) });
    const untouched = await pool.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE tenant_id = $1", [other]);
    expect(untouched.rows[0]!.n).toBe("500");

    // Archives: contiguous, non-overlapping, covering 1..EXPIRED, each verified by digest and chain.
    const rows = await store.archives(tenant);
    expect(rows.every((a) => a.state === "deleted")).toBe(true);
    let next = 1n;
    let archived = 0n;
    for (const a of rows) {
      expect(a.firstSequence).toBe(next);
      next = a.lastSequence + 1n;
      archived += a.count;
      const body = await archive.get(a.objectKey);
      expect(body).not.toBeNull();
      expect(archiveProblem(body!, a)).toBeNull();
      const seqs = decodeArchive(body!).map((r) => r.sequence);
      expect(seqs).toEqual(Array.from({ length: Number(a.count) }, (_, k) => a.firstSequence + BigInt(k)));
      const manifest = JSON.parse(Buffer.from((await archive.get(`${a.objectKey}.manifest.json`))!).toString("utf8"));
      expect(manifest).toMatchObject({
        type: "auditlog.archive-manifest",
        tenant_id: tenant,
        count: String(a.count),
        first_sequence: String(a.firstSequence),
        last_sequence: String(a.lastSequence),
        first_prev_hash: a.firstPrevHash,
        last_hash: a.lastHash,
        sha256: a.sha256,
      });
    }
    expect(next - 1n).toBe(BigInt(EXPIRED));
    expect(archived).toBe(BigInt(EXPIRED));
    // No stray objects: one object and one manifest per archive (a rerun overwrote, never duplicated).
    expect(await archive.list(`${objectPrefix}${tenant}/`)).toEqual(
      rows.flatMap((a) => [a.objectKey, `${a.objectKey}.manifest.json`]).sort(),
    );

    // Elasticsearch: only the searchable window.
    const docs = await documents(client, indexNames(prefix).alias, tenant);
    expect(docs.length).toBe(TOTAL - UNSEARCHABLE);
    expect(docs[0]!.sequence).toBe(UNSEARCHABLE + 1);
    expect((await documents(client, indexNames(prefix).alias, other)).length).toBe(500);

    // The chain verifies from the anchor, and the anchor is the last archived hash.
    const verdict = await verifyChain(pool, tenant);
    expect(verdict).toMatchObject({ ok: true, checked: BigInt(TOTAL - EXPIRED), fromSequence: BigInt(EXPIRED + 1) });
    const anchor = await store.anchor(tenant);
    expect(anchor).toEqual({ sequence: BigInt(EXPIRED), hash: rows.at(-1)!.lastHash });

    // The reconciler leaves the removed window alone.
    const report = await new Reconciler({ pool, client, log, prefix }).reconcileTenant(tenant);
    expect(report.eventsRepaired).toBe(0);
    expect((await documents(client, indexNames(prefix).alias, tenant)).length).toBe(TOTAL - UNSEARCHABLE);
  }, 900_000);

  it("VerifyChain with include_archives checks the whole chain, archives then live rows, and names the first break", async () => {
    const handlers = queryService({
      validator: createValidator(),
      reader: new EventReader(pool),
      backend: {} as SearchBackend,
      archivedChain: (t, anchor, upTo) => verifyArchivedChain(archive, t, anchor, upTo),
    });
    const principal: Principal = { kind: "key", keyId: "k", tenantId: tenant, scopes: new Set(["query"]) };
    const verify = (toSequence = 0n) =>
      handlers.verifyChain!(
        create(VerifyChainRequestSchema, { includeArchives: true, toSequence }),
        createHandlerContext({
          service: QueryService,
          method: QueryService.method.verifyChain,
          protocolName: "connect",
          requestMethod: "POST",
          url: "http://localhost/",
          contextValues: createContextValues().set(principalKey, principal),
        }),
      );
    const rows = await store.archives(tenant);
    expect(rows.length).toBeGreaterThan(3);
    const whole = await verify();
    expect(whole).toMatchObject({ ok: true, checked: BigInt(TOTAL), fromSequence: 1n, toSequence: BigInt(TOTAL) });
    // Up to a sequence inside the archives: only that far, with the hash there.
    const partial = await verify(rows[1]!.lastSequence);
    expect(partial).toMatchObject({
      ok: true,
      checked: rows[1]!.lastSequence,
      toSequence: rows[1]!.lastSequence,
      headHash: rows[1]!.lastHash,
    });

    // Each tampering is undone before the next.
    const put = (key: string, body: Uint8Array, type = "application/gzip") => archive.put(key, body, type);
    const objectOf = async (key: string) => (await archive.get(key))!;

    // One altered byte in an event of an archive object: named by sequence.
    const hit = rows[2]!;
    const original = await objectOf(hit.objectKey);
    const lines = gunzipSync(original).toString("utf8").split("\n");
    const victim = 1234;
    const altered = lines[victim]!.replace(/user-(\d)/, (_, d) => `user-${(Number(d) + 1) % 10}`);
    expect(altered).not.toBe(lines[victim]);
    lines[victim] = altered;
    await put(hit.objectKey, gzipSync(Buffer.from(lines.join("\n"), "utf8")));
    const alteredVerdict = await verify();
    expect(alteredVerdict.ok).toBe(false);
    expect(alteredVerdict.broken).toMatchObject({ sequence: hit.firstSequence + BigInt(victim) });
    expect(alteredVerdict.broken!.reason).toContain(hit.objectKey);
    // A byte changed outside any event (the gzip header's time): the object's digest.
    const header = Buffer.from(original);
    header[4] = header[4]! ^ 0xff;
    await put(hit.objectKey, header);
    expect((await verify()).broken).toMatchObject({ sequence: hit.firstSequence });
    expect((await verify()).broken!.reason).toContain("SHA-256");
    await put(hit.objectKey, original);
    expect((await verify()).ok).toBe(true);

    // A removed archive (object and manifest): a gap at its first sequence.
    const gone = rows[3]!;
    const goneManifest = await objectOf(`${gone.objectKey}.manifest.json`);
    const goneObject = await objectOf(gone.objectKey);
    await archive.delete(gone.objectKey);
    await archive.delete(`${gone.objectKey}.manifest.json`);
    const gap = await verify();
    expect(gap).toMatchObject({ ok: false, broken: { sequence: gone.firstSequence } });
    expect(gap.broken!.reason).toContain("missing");
    // Only the object removed: named as missing too.
    await put(`${gone.objectKey}.manifest.json`, goneManifest, "application/json");
    expect((await verify()).broken).toMatchObject({ sequence: gone.firstSequence, reason: `archive object ${gone.objectKey} is missing` });
    await put(gone.objectKey, goneObject);
    expect((await verify()).ok).toBe(true);

    // A manifest whose last hash is not the next one's prev hash: the link at the next one's first sequence.
    const before = rows[0]!;
    const manifestKey = `${before.objectKey}.manifest.json`;
    const manifest = await objectOf(manifestKey);
    const wrongEnd = Buffer.from(Buffer.from(manifest).toString("utf8").replace(before.lastHash, "f".repeat(64)), "utf8");
    await put(manifestKey, wrongEnd, "application/json");
    const unlinked = await verify();
    expect(unlinked).toMatchObject({ ok: false, broken: { sequence: rows[1]!.firstSequence } });
    expect(unlinked.broken!.reason).toContain("link broken");
    await put(manifestKey, manifest, "application/json");
    expect(await verify()).toMatchObject({ ok: true, checked: BigInt(TOTAL) });
  }, 600_000);

  it("drops a whole partition and a whole monthly index once every tenant is past them", async () => {
    await store.setPolicy(other, { searchableDays: 10, keepDays: 19 });
    const monthIndex = `${prefix}-received-2026.10`;
    expect(await client.indices.exists({ index: monthIndex })).toBe(true);
    const round = await job().runOnce();
    // The other tenant's 500 events (60 days old) are archived; October then holds nothing.
    expect(round).toMatchObject({ eventsArchived: 500, partitionsDropped: ["events_2026_10"] });
    expect(round!.indicesDropped).toContain(monthIndex);
    expect(await client.indices.exists({ index: monthIndex })).toBe(false);
    const parts = await pool.query("SELECT 1 FROM pg_class WHERE relname = 'events_2026_10'");
    expect(parts.rowCount).toBe(0);
    // What remains is untouched and still verifies.
    expect(await verifyChain(pool, tenant)).toMatchObject({ ok: true, checked: BigInt(TOTAL - EXPIRED) });
    expect((await documents(client, indexNames(prefix).alias, tenant)).length).toBe(TOTAL - UNSEARCHABLE);
  }, 300_000);
});
