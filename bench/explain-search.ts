// EXPLAIN ANALYZE of the PostgreSQL backend's search statement for each
// bench search shape, run the way the service runs it (tenant-scoped read as
// auditlog_reader, under row-level security). For docs/PERFORMANCE.md.
//
//   npx node bench/explain-search.ts --database-url postgres://postgres@127.0.0.1:5432/<bench db> --tenant <id>
import { parseArgs } from "node:util";
import pg from "pg";
import type { EventQuery } from "../src/domain/event-query.ts";
import { queryFromFilter } from "../src/domain/event-query.ts";
import { create } from "@bufbuild/protobuf";
import { EventFilterSchema } from "../gen/auditlog/v1/query_pb.js";
import { Outcome } from "../gen/auditlog/v1/event_pb.js";

import { withTenantRead } from "../src/store/tenant-scope.ts";
import { searchSql } from "../src/search/postgres/sql.ts";
import { microsFromDate } from "../src/domain/timestamp.ts";

const { values: args } = parseArgs({
  options: { "database-url": { type: "string" }, tenant: { type: "string" } },
});
const pool = new pg.Pool({ connectionString: args["database-url"], max: 1 });
const tenant = args.tenant!;
const last = await pool.query<{ t: Date }>("SELECT max(occurred_at) AS t FROM events WHERE tenant_id = $1", [tenant]);
const end = last.rows[0]!.t.getTime();
const ts = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: 0 });
const q = (f: Parameters<typeof create<typeof EventFilterSchema>>[1]): EventQuery => queryFromFilter(create(EventFilterSchema, f));
const deep = await pool.query<{ occurred_at: Date; sequence: string }>(
  "SELECT occurred_at, sequence FROM events WHERE tenant_id = $1 ORDER BY occurred_at DESC, sequence DESC OFFSET 980 LIMIT 1",
  [tenant],
);
const shapes: [string, EventQuery, { occurredAt: bigint; sequence: bigint } | null, number][] = [
  ["filter only", q({ actions: ["role.granted"], outcomes: [Outcome.DENIED] }), null, 51],
  [
    "filter + time range",
    q({ actions: ["user.login"], occurredAfter: ts(end - 4 * 3_600_000), occurredBefore: ts(end - 3_600_000) }),
    null,
    51,
  ],
  ["free text", q({ text: "anomaly" }), null, 51],
  ["metadata key", q({ metadata: [{ key: "billing.plan", values: ["enterprise"] }] }), null, 51],
  [
    "deep page",
    { conditions: [] },
    { occurredAt: microsFromDate(deep.rows[0]!.occurred_at), sequence: BigInt(deep.rows[0]!.sequence) },
    21,
  ],
];
for (const [name, query, after, limit] of shapes) {
  const sql = searchSql(tenant, query, "desc", after, limit, "events.*");
  const plan = await withTenantRead(pool, tenant, async (db) => {
    await db.query(`PREPARE s AS ${sql.text}`);
    const args = sql.values.map((v) =>
      v === null ? "NULL" : `'${(Array.isArray(v) ? `{${v.map((x) => JSON.stringify(x)).join(",")}}` : String(v)).replaceAll("'", "''")}'`,
    );
    const r = await db.query(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) EXECUTE s(${args.join(", ")})`);
    await db.query("DEALLOCATE s");
    return r.rows.map((x: Record<string, string>) => x["QUERY PLAN"]).join("\n");
  });
  console.log(`### ${name}\n${plan}\n`);
}
await pool.end();
