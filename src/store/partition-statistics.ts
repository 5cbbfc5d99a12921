// Planner statistics for the partitions of `events`. Search from PostgreSQL
// depends on them: without statistics a freshly filled partition looks
// nearly empty, and the planner sorts a whole tenant to return one page
// instead of walking an index in page order (seconds instead of
// milliseconds, see docs/PERFORMANCE.md, "Round two"). Autovacuum keeps them
// when it runs, but it may be off or slow to reach a partition that a bulk
// ingest just filled, so the service analyzes stale partitions itself.
import type { Pool } from "pg";

/** Analyze a partition once this share of its rows changed since its last analyze (autovacuum's default). */
export const STALE_FRACTION = 0.1;
/** …and at least this many rows: small partitions are cheap to plan for either way. */
export const STALE_MIN_ROWS = 1000;

/**
 * The partitions of `events` whose statistics are missing or stale: never
 * analyzed with rows in them, or changed by STALE_FRACTION of their rows.
 */
export async function stalePartitions(pool: Pool): Promise<string[]> {
  const r = await pool.query<{ name: string }>(
    `SELECT c.relname AS name
       FROM pg_inherits i
       JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_stat_user_tables s ON s.relid = c.oid
      WHERE i.inhparent = 'events'::regclass
        AND s.n_mod_since_analyze >= $1
        AND (coalesce(s.last_analyze, s.last_autoanalyze) IS NULL
             OR s.n_mod_since_analyze >= $2 * greatest(s.n_live_tup, c.reltuples))
      ORDER BY c.relname`,
    [STALE_MIN_ROWS, STALE_FRACTION],
  );
  return r.rows.map((row) => row.name);
}

/** ANALYZEs each stale partition of `events`; returns their names. */
export async function analyzeStalePartitions(pool: Pool): Promise<string[]> {
  const stale = await stalePartitions(pool);
  // Names come from pg_class, quoted as identifiers all the same.
  for (const name of stale) await pool.query(`ANALYZE "${name.replaceAll('"', '""')}"`);
  return stale;
}
