// Monthly partitions of `events`, created ahead of need: the current month
// and the next `monthsAhead`. Run at start and then periodically.
import type { Pool } from "pg";

export function monthStart(year: number, month: number): Date {
  return new Date(Date.UTC(year, month, 1));
}

export function partitionName(d: Date): string {
  return `events_${d.getUTCFullYear()}_${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

export function plannedPartitions(now: Date, monthsAhead: number): { name: string; from: Date; to: Date }[] {
  const out = [];
  for (let i = 0; i <= monthsAhead; i++) {
    const from = monthStart(now.getUTCFullYear(), now.getUTCMonth() + i);
    const to = monthStart(now.getUTCFullYear(), now.getUTCMonth() + i + 1);
    out.push({ name: partitionName(from), from, to });
  }
  return out;
}

export async function ensurePartitions(pool: Pool, now = new Date(), monthsAhead = 2): Promise<string[]> {
  const created: string[] = [];
  for (const p of plannedPartitions(now, monthsAhead)) {
    const exists = await pool.query("SELECT 1 FROM pg_class WHERE relname = $1", [p.name]);
    if (exists.rowCount) continue;
    // Names and bounds come from dates we computed, never from input.
    await pool.query(
      `CREATE TABLE IF NOT EXISTS ${p.name} PARTITION OF events
       FOR VALUES FROM ('${p.from.toISOString()}') TO ('${p.to.toISOString()}')`,
    );
    created.push(p.name);
  }
  return created;
}
