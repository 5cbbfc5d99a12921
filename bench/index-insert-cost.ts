// What an index on `events` costs an insert: the same rows inserted with
// INSERT ... SELECT into copies of the table that differ only in their
// page-order index, in turns, several rounds; the wall time and the
// PostgreSQL backend's CPU time of each insert (from /proc: run it on the
// database's machine). The direct insert measurement of docs/PERFORMANCE.md
// ("Round two"), for the index of 0015 against the one it replaced and the
// separate action index that 0012 dropped.
//
//   npx node bench/run.ts --start --scale 0.25 --phases ingest --elasticsearch-url "" --keep-db
//   npx node bench/index-insert-cost.ts --database-url postgres://postgres@127.0.0.1:5432/<bench database> [--rows 105000] [--rounds 8]
//
// It makes tables index_cost_* in that database and drops them at the end.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";

const { values: args } = parseArgs({
  options: {
    "database-url": { type: "string" },
    rows: { type: "string", default: "105000" },
    rounds: { type: "string", default: "8" },
  },
});
if (!args["database-url"]) throw new Error("--database-url is required");
const ROWS = Number(args.rows);
const ROUNDS = Number(args.rounds);

/** The page-order index of each copy (each also has events' primary key and BRIN index). */
const VARIANTS: Record<string, string[]> = {
  before_0015: ["(tenant_id, occurred_at, sequence)"],
  with_0015: ["(tenant_id, occurred_at, sequence, action, outcome, actor_id)"],
  separate_action_index: ["(tenant_id, occurred_at, sequence)", "(tenant_id, action, occurred_at, sequence)"],
};

const client = new pg.Client({ connectionString: args["database-url"] });
await client.connect();
const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
/** /proc counts CPU time in clock ticks of USER_HZ, 100 per second on Linux. */
const TICKS_PER_SECOND = 100;
/** CPU milliseconds the backend has used so far (utime + stime). */
function backendCpuMs(): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

const table = (name: string) => `index_cost_${name}`;
try {
  await client.query("DROP TABLE IF EXISTS index_cost_source");
  await client.query(`CREATE TABLE index_cost_source AS SELECT * FROM events ORDER BY received_at, tenant_id, sequence LIMIT ${ROWS}`);
  for (const [name, indexes] of Object.entries(VARIANTS)) {
    await client.query(`DROP TABLE IF EXISTS ${table(name)}`);
    await client.query(`CREATE TABLE ${table(name)} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
    await client.query(`ALTER TABLE ${table(name)} ADD PRIMARY KEY (tenant_id, sequence, received_at)`);
    await client.query(`CREATE INDEX ON ${table(name)} USING brin (received_at)`);
    for (const columns of indexes) await client.query(`CREATE INDEX ON ${table(name)} ${columns}`);
  }
  const runs: Record<string, { wallMs: number; cpuMs: number }[]> = Object.fromEntries(Object.keys(VARIANTS).map((n) => [n, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const name of Object.keys(VARIANTS)) {
      await client.query(`TRUNCATE ${table(name)}`);
      await client.query("CHECKPOINT");
      const cpu0 = backendCpuMs();
      const t0 = performance.now();
      await client.query(`INSERT INTO ${table(name)} SELECT * FROM index_cost_source`);
      const run = { wallMs: Math.round(performance.now() - t0), cpuMs: Math.round(backendCpuMs() - cpu0) };
      runs[name]!.push(run);
      console.log(`round ${round} ${name}: ${run.wallMs} ms, backend CPU ${run.cpuMs} ms`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name, rs] of Object.entries(runs)) {
    const size = await client.query<{ size: string }>(
      "SELECT pg_size_pretty(sum(pg_relation_size(indexrelid))) AS size FROM pg_index WHERE indrelid = $1::regclass",
      [table(name)],
    );
    console.log(
      `${name}: ${ROWS} rows, median ${median(rs.map((r) => r.wallMs))} ms, backend CPU median ${median(rs.map((r) => r.cpuMs))} ms; indexes ${size.rows[0]!.size}`,
    );
  }
} finally {
  for (const name of Object.keys(VARIANTS)) await client.query(`DROP TABLE IF EXISTS ${table(name)}`);
  await client.query("DROP TABLE IF EXISTS index_cost_source");
  await client.end();
}
