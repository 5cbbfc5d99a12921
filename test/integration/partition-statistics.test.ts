// Planner statistics of the event partitions (src/store/partition-statistics.ts)
// and what they are for: once a partition's statistics are current, a page
// of search from PostgreSQL walks the (tenant_id, occurred_at, sequence)
// index in page order instead of sorting the tenant's events, under
// row-level security as the service reads (with 0012's actor policy, which
// the planner can estimate).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryFromFilter } from "../../src/domain/event-query.ts";
import { create } from "@bufbuild/protobuf";
import { EventFilterSchema } from "../../gen/auditlog/v1/query_pb.js";
import { Outcome } from "../../gen/auditlog/v1/event_pb.js";
import { searchSql } from "../../src/search/postgres/sql.ts";
import { migrate } from "../../src/store/migrate.ts";
import { analyzeStalePartitions, stalePartitions } from "../../src/store/partition-statistics.ts";
import { ensurePartitions, partitionName } from "../../src/store/partitions.ts";
import { withTenantRead } from "../../src/store/tenant-scope.ts";
import { freshDatabase } from "../support/db.ts";

const TENANT = "t-stats";
const ACTIONS = ["user.login", "role.granted", "invoice.billed", "document.viewed", "customer.updated", "settings.updated", "key.rotated"];

async function insertEvents(pool: pg.Pool, from: number, to: number): Promise<void> {
  await pool.query(
    `INSERT INTO events (tenant_id, sequence, id, occurred_at, received_at, action, actor_id, actor_type, actor_name,
       actor_ip, actor_user_agent, actor_session_id, outcome, severity, request_id, trace_id, source, location,
       message, content_hash, hash, prev_hash)
     SELECT $1, i, 'ev-' || i, now() - i * interval '1 second', now(), ($2::text[])[1 + i % 7], 'u-' || (i % 500), 'USER', '',
       '', '', '', (ARRAY['SUCCESS', 'SUCCESS', 'FAILURE', 'DENIED'])[1 + i % 4], 'INFO', '', '', '', '',
       'event ' || i, '', '', ''
       FROM generate_series($3::int, $4::int) i`,
    [TENANT, ACTIONS, from, to],
  );
}

/** pg_stat counters reach the statistics views shortly after a transaction ends. */
async function eventually<T>(f: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await f();
    if (ok(v) || i >= 100) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("partition statistics", () => {
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  const current = partitionName(new Date());

  beforeAll(async () => {
    db = await freshDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    await migrate(pool);
    await ensurePartitions(pool);
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it("analyzes a partition that was filled and never analyzed, and then leaves it alone", async () => {
    expect(await stalePartitions(pool)).toEqual([]);
    await insertEvents(pool, 1, 30_000);
    expect(
      await eventually(
        () => stalePartitions(pool),
        (s) => s.length > 0,
      ),
    ).toEqual([current]);
    expect(await analyzeStalePartitions(pool)).toEqual([current]);
    const analyzed = await pool.query<{ n: number }>("SELECT reltuples::int AS n FROM pg_class WHERE relname = $1", [current]);
    expect(analyzed.rows[0]!.n).toBe(30_000);
    expect(
      await eventually(
        () => stalePartitions(pool),
        (s) => s.length === 0,
      ),
    ).toEqual([]);
    // A few more rows (under a tenth) do not make it stale again; many more do.
    await insertEvents(pool, 30_001, 31_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await stalePartitions(pool)).toEqual([]);
    await insertEvents(pool, 31_001, 40_000);
    expect(
      await eventually(
        () => stalePartitions(pool),
        (s) => s.length > 0,
      ),
    ).toEqual([current]);
    await analyzeStalePartitions(pool);
  });

  const plan = async (filter: Parameters<typeof create<typeof EventFilterSchema>>[1]) => {
    const sql = searchSql(TENANT, queryFromFilter(create(EventFilterSchema, filter)), "desc", null, 51, "events.id");
    return withTenantRead(pool, TENANT, async (c) => {
      const r = await c.query<{ "QUERY PLAN": string }>(`EXPLAIN ${sql.text}`, sql.values);
      return r.rows.map((row) => row["QUERY PLAN"]).join("\n");
    });
  };

  it("serves a page of one action and outcome in page order, without sorting", async () => {
    const p = await plan({ actions: ["role.granted"], outcomes: [Outcome.DENIED] });
    expect(p).toMatch(/Index Scan Backward using \S*tenant_id_occurred_at_sequence/);
    expect(p).not.toMatch(/^\s*(->\s+)?Sort\s+\(/m);
    // Checked on the index entries (0015), not on each event read: only the matching events are fetched.
    expect(p).toMatch(/Index Cond: \(.*\(action = 'role\.granted'::text\) AND \(outcome = 'DENIED'::text\)\)/);
  });

  it("checks one actor (a filter, or a User's own events) on the index entries too", async () => {
    const p = await plan({ actorIds: ["u-7"] });
    expect(p).toMatch(/Index Scan Backward using \S*tenant_id_occurred_at_sequence/);
    expect(p).toMatch(/Index Cond: \(.*\(actor_id = 'u-7'::text\)\)/);
  });

  it("serves an unfiltered page and free text from the time index in page order", async () => {
    for (const filter of [{}, { text: "event" }]) {
      const p = await plan(filter);
      expect(p).toMatch(/Index Scan Backward using \S*tenant_id_occurred_at_sequence/);
      expect(p).not.toMatch(/^\s*(->\s+)?Sort\s+\(/m);
    }
  });
});
