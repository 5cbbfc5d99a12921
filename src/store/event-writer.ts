// Writes one group-commit batch in one transaction: lock the chain heads of
// the tenants involved (in tenant order, so replicas cannot deadlock), sort
// out duplicates and conflicts against the idempotency table, assign
// sequences and chain hashes, insert, move the heads, commit. Nothing is
// acknowledged before COMMIT returns; if anything fails, nothing is written.
import type { Pool, PoolClient, QueryResult } from "pg";
import type { EventRecord, StoredRecord } from "../domain/event-record.ts";
import { chainHash, type SealedContent } from "../domain/hash-chain.ts";
import { type Micros, microsFromDate } from "../domain/timestamp.ts";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import { COPY_EVENT_IDS_SQL, COPY_EVENTS_SQL, copyEventsChunks, eventIdsText, insertEventIdsSql, insertEventsSql } from "./event-rows.ts";
import { SYSTEM_SCOPE_BEGIN } from "./system-scope.ts";
import { inTransactionCommitting } from "./transaction.ts";
import { COMMIT_CHANNEL, commitPayload } from "../platform/commit-channel.ts";
import { inlineParams } from "./sql-literal.ts";

/**
 * One event to write, sealed by hash-chain.ts's sealContent (computed before
 * the batch's transaction, so none of the hashing holds the chain locks):
 * its salt, its content hash (salted, what the chain binds) and its content
 * digest (without salt, what a retry is compared with).
 */
export type WriteItem = { tenantId: string; record: EventRecord } & SealedContent;
export type WriteResult =
  | { status: "accepted"; sequence: bigint }
  | { status: "duplicate"; sequence: bigint }
  | { status: "conflict"; sequence: bigint };

/** A write for a tenant that has no chain head: the tenant does not exist (any more), so a retry cannot succeed. */
export class UnknownTenantError extends Error {
  readonly tenantId: string;
  constructor(tenantId: string) {
    super(`tenant "${tenantId}" does not exist`);
    this.name = "UnknownTenantError";
    this.tenantId = tenantId;
  }
}

/** An id already stored: its content digest ("" once the event was erased) and its sequence. */
type Known = { digest: string; sequence: bigint };

/**
 * A retry of a stored id: the same content is a duplicate, other content a
 * conflict. An erased event's content cannot be compared any more; every
 * retry of its id is a duplicate (answering CONFLICT for other content
 * would let anyone who can ingest confirm a guess of the erased content).
 */
function retryStatus(prior: Known, item: WriteItem): "duplicate" | "conflict" {
  return prior.digest === "" || prior.digest === item.digest ? "duplicate" : "conflict";
}

/**
 * A batch spans tenants, so it is written in system scope
 * (migrations/0004_force_rls.sql).
 */
export async function writeBatch(
  pool: Pool,
  items: WriteItem[],
  now: () => Micros = () => microsFromDate(new Date()),
): Promise<WriteResult[]> {
  const tenants = [...new Set(items.map((i) => i.tenantId))].sort();
  const mode = await copyMode(pool);
  return inTransactionCommitting(pool, beginSql(tenants, mode), async (db, began) =>
    writeInTransaction(db, items, tenants, headsOf(began, tenants), now(), mode),
  );
}

type CopyMode = "direct" | "staged";
const copyModes = new WeakMap<Pool, Promise<CopyMode>>();

/**
 * PostgreSQL refuses COPY FROM into a table whose row-level security applies
 * to the session, which forced RLS makes true for an owner that is not a
 * superuser. Then rows go through a temporary table of this session and one
 * INSERT ... SELECT, which the policies check. A superuser (the embedded
 * database, most installations) keeps the direct COPY. Decided once per pool:
 * every connection logs in as the same role.
 */
function copyMode(pool: Pool): Promise<CopyMode> {
  let mode = copyModes.get(pool);
  if (!mode) {
    mode = pool
      .query<{ active: boolean }>("SELECT row_security_active('events') AS active")
      .then((r) => (r.rows[0]!.active ? "staged" : "direct"));
    mode.catch(() => copyModes.delete(pool));
    copyModes.set(pool, mode);
  }
  return mode;
}

// ON COMMIT DELETE ROWS: the table lives as long as the connection, its rows
// as long as the transaction, so staging costs no catalog work per batch.
const STAGE_TABLES_SQL = `
  CREATE TEMP TABLE IF NOT EXISTS stage_event_ids (LIKE event_ids) ON COMMIT DELETE ROWS;
  CREATE TEMP TABLE IF NOT EXISTS stage_events (LIKE events) ON COMMIT DELETE ROWS`;

type Heads = Map<string, { sequence: bigint; hash: string }>;
type Plan = { results: WriteResult[]; stored: StoredRecord[]; digests: string[]; heads: Heads };

const key = (tenantId: string, id: string) => `${tenantId}\u0000${id}`;

/**
 * Classifies the items against what is already stored (`known`, keyed by
 * tenant and id) and assigns sequences and chain hashes to the new ones, in
 * order. Duplicates within the batch are resolved here too.
 */
function plan(items: WriteItem[], lockedHeads: Heads, known: Map<string, Known>, receivedAt: Micros): Plan {
  const heads: Heads = new Map(lockedHeads);
  const seen = new Map(known);
  const results: WriteResult[] = [];
  const stored: StoredRecord[] = [];
  const digests: string[] = [];
  for (const item of items) {
    const k = key(item.tenantId, item.record.id);
    const prior = seen.get(k);
    if (prior) {
      results.push({ status: retryStatus(prior, item), sequence: prior.sequence });
      continue;
    }
    const head = heads.get(item.tenantId)!;
    const sequence = head.sequence + 1n;
    const link = { tenantId: item.tenantId, sequence, receivedAt, contentHash: item.contentHash };
    const hash = chainHash(head.hash, link);
    stored.push({ ...item.record, ...link, hash, prevHash: head.hash, salt: item.salt });
    digests.push(item.digest);
    heads.set(item.tenantId, { sequence, hash });
    seen.set(k, { digest: item.digest, sequence });
    results.push({ status: "accepted", sequence });
  }
  return { results, stored, digests, heads };
}

/** `text`: the rows, whole or in pieces (sent as they are made, so a large batch is never in memory twice over). */
function copyIn(db: PoolClient, sql: string, text: string | Iterable<string>): Promise<void> {
  return pipeline(Readable.from(typeof text === "string" ? [text] : text), db.query(copyFrom(sql)));
}

/** COPY `sql` (COPY <table> (columns) FROM STDIN), or through the staging table of that name when staged. */
async function copyRows(db: PoolClient, mode: CopyMode, sql: string, text: string | Iterable<string>): Promise<void> {
  if (mode === "direct") return copyIn(db, sql, text);
  const m = /^COPY (\w+) (\([^)]*\)) FROM STDIN$/.exec(sql);
  if (!m) throw new Error(`cannot stage ${sql}`);
  const [, table, columns] = m;
  await db.query(`TRUNCATE stage_${table}`);
  await copyIn(db, `COPY stage_${table} ${columns} FROM STDIN`, text);
  await db.query(`INSERT INTO ${table} ${columns} SELECT ${columns!.slice(1, -1)} FROM stage_${table}`);
}

const UNIQUE_VIOLATION = "23505";

/**
 * The batch's first round trip, one simple query: BEGIN in system scope,
 * the staging tables when staged, the tenants' chain heads locked (the last
 * but one result), and the savepoint the optimistic id claim falls back to.
 */
function beginSql(tenants: readonly string[], mode: CopyMode): string {
  return [
    SYSTEM_SCOPE_BEGIN,
    ...(mode === "staged" ? [STAGE_TABLES_SQL] : []),
    inlineParams({
      text: "SELECT tenant_id, sequence, hash FROM chain_heads WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id FOR UPDATE",
      values: [tenants],
    }),
    "SAVEPOINT claim_ids",
  ].join(";\n");
}

function headsOf(began: QueryResult[], tenants: readonly string[]): Heads {
  const locked: Heads = new Map();
  for (const r of began.at(-2)!.rows as { tenant_id: string; sequence: string; hash: string }[]) {
    locked.set(r.tenant_id, { sequence: BigInt(r.sequence), hash: r.hash });
  }
  for (const t of tenants) if (!locked.has(t)) throw new UnknownTenantError(t);
  return locked;
}

/**
 * The batch's last round trip: the heads moved, the commit notification
 * (delivered at commit: it wakes the search indexer and the live tail
 * without polling delay), and COMMIT.
 */
function endSql(moved: readonly string[], heads: Heads): string {
  const at = (t: string) => heads.get(t)!;
  return [
    inlineParams({
      text: `UPDATE chain_heads h SET sequence = u.sequence, hash = u.hash
       FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(tenant_id, sequence, hash)
       WHERE h.tenant_id = u.tenant_id`,
      values: [moved, moved.map((t) => at(t).sequence), moved.map((t) => at(t).hash)],
    }),
    inlineParams({ text: "SELECT pg_notify($1, $2)", values: [COMMIT_CHANNEL, commitPayload(moved.map((t) => [t, at(t).sequence]))] }),
    "COMMIT",
  ].join(";\n");
}

/**
 * Batches of up to this many new events are inserted with literal values in
 * the last round trip; larger ones go by COPY, several times faster per row
 * but two round trips per table.
 */
export const INLINE_MAX_EVENTS = 32;

/**
 * Writes the plan and commits: a batch of up to INLINE_MAX_EVENTS new events
 * in one round trip (its rows, the heads moved, the notification and COMMIT),
 * a larger one by two COPY and that last round trip. Each round trip is a
 * turn of the event loop that other work can delay, so an Append of a few
 * events is two round trips with the one that began the transaction.
 */
async function writePlan(
  db: PoolClient,
  p: Plan,
  tenants: readonly string[],
  locked: Heads,
  receivedAt: Micros,
  mode: CopyMode,
): Promise<void> {
  if (p.stored.length === 0) {
    await db.query("COMMIT");
    return;
  }
  const end = endSql(
    tenants.filter((t) => p.heads.get(t) !== locked.get(t)),
    p.heads,
  );
  if (p.stored.length <= INLINE_MAX_EVENTS) {
    await db.query([insertEventIdsSql(p.stored, p.digests, receivedAt), insertEventsSql(p.stored), end].join(";\n"));
    return;
  }
  await copyRows(db, mode, COPY_EVENT_IDS_SQL, eventIdsText(p.stored, p.digests, receivedAt));
  // COPY is several times faster than a multi-row INSERT for large batches.
  await copyRows(db, mode, COPY_EVENTS_SQL, copyEventsChunks(p.stored));
  await db.query(end);
}

async function writeInTransaction(
  db: PoolClient,
  items: WriteItem[],
  tenants: readonly string[],
  locked: Heads,
  receivedAt: Micros,
  mode: CopyMode,
): Promise<WriteResult[]> {
  // Optimistic path: most events are new, so their ids are claimed without
  // looking first. A retry among them fails the claim on the primary key;
  // then the batch is planned again against the ids already stored.
  let p = plan(items, locked, new Map(), receivedAt);
  try {
    await writePlan(db, p, tenants, locked, receivedAt, mode);
  } catch (err) {
    if ((err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
    await db.query("ROLLBACK TO SAVEPOINT claim_ids");
    p = plan(items, locked, await storedIds(db, items), receivedAt);
    await writePlan(db, p, tenants, locked, receivedAt, mode);
  }
  return p.results;
}

async function storedIds(db: PoolClient, items: WriteItem[]): Promise<Map<string, Known>> {
  const known = new Map<string, Known>();
  const existing = await db.query<{ tenant_id: string; event_id: string; content_hash: string; sequence: string }>(
    `SELECT e.tenant_id, e.event_id, e.content_hash, e.sequence FROM event_ids e
     JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, event_id) USING (tenant_id, event_id)`,
    [items.map((i) => i.tenantId), items.map((i) => i.record.id)],
  );
  for (const r of existing.rows) {
    known.set(key(r.tenant_id, r.event_id), { digest: r.content_hash, sequence: BigInt(r.sequence) });
  }
  return known;
}
