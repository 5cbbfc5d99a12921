// Writes one group-commit batch in one transaction: lock the chain heads of
// the tenants involved (in tenant order, so replicas cannot deadlock), sort
// out duplicates and conflicts against the idempotency table, assign
// sequences and chain hashes, insert, move the heads, commit. Nothing is
// acknowledged before COMMIT returns; if anything fails, nothing is written.
import type { Pool, PoolClient } from "pg";
import type { EventRecord, StoredRecord } from "../domain/event-record.ts";
import { chainHash } from "../domain/hash-chain.ts";
import { formatMicros, type Micros, microsFromDate } from "../domain/timestamp.ts";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import { COPY_EVENTS_SQL, copyEventsText } from "./event-rows.ts";
import { inTransaction } from "./transaction.ts";

export type WriteItem = { tenantId: string; record: EventRecord; contentHash: string };
export type WriteResult =
  | { status: "accepted"; sequence: bigint }
  | { status: "duplicate"; sequence: bigint }
  | { status: "conflict"; sequence: bigint };

/** LISTEN on this channel to hear about commits. */
export const COMMIT_CHANNEL = "auditlog_commits";

export class UnknownTenantError extends Error {}

type Known = { contentHash: string; sequence: bigint };

export function writeBatch(pool: Pool, items: WriteItem[], now: () => Micros = () => microsFromDate(new Date())): Promise<WriteResult[]> {
  return inTransaction(pool, "BEGIN", (db) => writeInTransaction(db, items, now()));
}


async function writeInTransaction(db: PoolClient, items: WriteItem[], receivedAt: Micros): Promise<WriteResult[]> {
  const tenants = [...new Set(items.map((i) => i.tenantId))].sort();
  const heads = new Map<string, { sequence: bigint; hash: string }>();
  const headRows = await db.query<{ tenant_id: string; sequence: string; hash: string }>(
    "SELECT tenant_id, sequence, hash FROM chain_heads WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id FOR UPDATE",
    [tenants],
  );
  for (const r of headRows.rows) heads.set(r.tenant_id, { sequence: BigInt(r.sequence), hash: r.hash });
  for (const t of tenants) if (!heads.has(t)) throw new UnknownTenantError(`tenant ${t} does not exist`);

  const known = new Map<string, Known>();
  const existing = await db.query<{ tenant_id: string; event_id: string; content_hash: string; sequence: string }>(
    `SELECT e.tenant_id, e.event_id, e.content_hash, e.sequence FROM event_ids e
     JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, event_id) USING (tenant_id, event_id)`,
    [items.map((i) => i.tenantId), items.map((i) => i.record.id)],
  );
  const key = (tenantId: string, id: string) => `${tenantId}\u0000${id}`;
  for (const r of existing.rows) {
    known.set(key(r.tenant_id, r.event_id), { contentHash: r.content_hash, sequence: BigInt(r.sequence) });
  }

  const results: WriteResult[] = [];
  const stored: StoredRecord[] = [];
  for (const item of items) {
    const k = key(item.tenantId, item.record.id);
    const prior = known.get(k);
    if (prior) {
      results.push({ status: prior.contentHash === item.contentHash ? "duplicate" : "conflict", sequence: prior.sequence });
      continue;
    }
    const head = heads.get(item.tenantId)!;
    const sequence = head.sequence + 1n;
    const link = { tenantId: item.tenantId, sequence, receivedAt, contentHash: item.contentHash };
    const hash = chainHash(head.hash, link);
    stored.push({ ...item.record, ...link, hash, prevHash: head.hash });
    heads.set(item.tenantId, { sequence, hash });
    known.set(k, { contentHash: item.contentHash, sequence });
    results.push({ status: "accepted", sequence });
  }
  if (stored.length === 0) return results;

  await db.query(
    `INSERT INTO event_ids (tenant_id, event_id, content_hash, sequence, received_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[])`,
    [
      stored.map((s) => s.tenantId),
      stored.map((s) => s.id),
      stored.map((s) => s.contentHash),
      stored.map((s) => s.sequence.toString()),
      stored.map(() => formatMicros(receivedAt)),
    ],
  );
  // COPY is several times faster than a multi-row INSERT for large batches.
  await pipeline(Readable.from([copyEventsText(stored)]), db.query(copyFrom(COPY_EVENTS_SQL)));
  const moved = tenants.filter((t) => stored.some((s) => s.tenantId === t));
  await db.query(
    `UPDATE chain_heads h SET sequence = u.sequence, hash = u.hash
     FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(tenant_id, sequence, hash)
     WHERE h.tenant_id = u.tenant_id`,
    [moved, moved.map((t) => heads.get(t)!.sequence.toString()), moved.map((t) => heads.get(t)!.hash)],
  );
  // Delivered at commit: wakes the search indexer without polling delay.
  await db.query(`NOTIFY ${COMMIT_CHANNEL}`);
  return results;
}
