// The checkpoints table (0010_checkpoints.sql): signed chain heads. Reads run
// as the tenant (row-level security); writes in system scope with an
// explicit tenant condition, since the periodic job spans tenants.
import type { Pool } from "pg";
import type { SignedCheckpoint } from "../domain/checkpoint.ts";
import { formatMicros } from "../domain/timestamp.ts";
import { withSystemScope } from "./system-scope.ts";
import { withTenantRead } from "./tenant-scope.ts";

/** Signs a chain head (the caller holds the key and the clock). */
export type HeadSigner = (head: { tenantId: string; sequence: bigint; hash: string }) => SignedCheckpoint;

/** The periodic run's advisory lock: one replica at a time signs the heads ("auditlog checkpoints"). */
const CHECKPOINT_LOCK = 0x61_75_64_63_6b_70_74n;

type Row = { tenant_id: string; sequence: string; hash: string; created_at: Date; key_id: string; signature: string; micros: string };

const COLUMNS = "tenant_id, sequence, hash, created_at, key_id, signature, (extract(epoch FROM created_at) * 1000000)::bigint AS micros";

function checkpointOf(r: Row): SignedCheckpoint {
  return {
    tenantId: r.tenant_id,
    sequence: BigInt(r.sequence),
    hash: r.hash,
    createdAt: BigInt(r.micros),
    keyId: r.key_id,
    signature: r.signature,
  };
}

const INSERT = `INSERT INTO checkpoints (tenant_id, sequence, hash, created_at, key_id, signature)
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
  ON CONFLICT (tenant_id, sequence, key_id) DO NOTHING`;

function insertValues(cps: SignedCheckpoint[]): unknown[] {
  return [
    cps.map((c) => c.tenantId),
    cps.map((c) => c.sequence.toString()),
    cps.map((c) => c.hash),
    // Microsecond precision survives as text; a Date would drop it.
    cps.map((c) => formatMicros(c.createdAt)),
    cps.map((c) => c.keyId),
    cps.map((c) => c.signature),
  ];
}

export class CheckpointStore {
  private readonly pool: Pool;
  private readonly readPool: Pool;

  constructor(pool: Pool, readPool: Pool = pool) {
    this.pool = pool;
    this.readPool = readPool;
  }

  /** Newest first; `beforeSequence` 0: from the newest. */
  list(tenantId: string, limit: number, beforeSequence: bigint, signal?: AbortSignal): Promise<SignedCheckpoint[]> {
    return withTenantRead(
      this.readPool,
      tenantId,
      async (db) => {
        const r = await db.query<Row>(
          `SELECT ${COLUMNS} FROM checkpoints WHERE tenant_id = $1 AND ($2::bigint = 0 OR sequence < $2::bigint)
            ORDER BY sequence DESC, key_id LIMIT $3`,
          [tenantId, beforeSequence.toString(), limit],
        );
        return r.rows.map(checkpointOf);
      },
      { signal },
    );
  }

  /**
   * Signs and keeps the tenant's current head, or answers the checkpoint
   * already kept for it with this key; null when the tenant has no event.
   */
  checkpointHead(tenantId: string, keyId: string, sign: HeadSigner): Promise<SignedCheckpoint | null> {
    return withSystemScope(this.pool, async (db) => {
      const h = await db.query<{ sequence: string; hash: string }>("SELECT sequence, hash FROM chain_heads WHERE tenant_id = $1", [
        tenantId,
      ]);
      const head = h.rows[0];
      if (!head || head.sequence === "0") return null;
      const signed = sign({ tenantId, sequence: BigInt(head.sequence), hash: head.hash });
      await db.query(INSERT, insertValues([signed]));
      const r = await db.query<Row>(`SELECT ${COLUMNS} FROM checkpoints WHERE tenant_id = $1 AND sequence = $2 AND key_id = $3`, [
        tenantId,
        head.sequence,
        keyId,
      ]);
      return checkpointOf(r.rows[0]!);
    });
  }

  /**
   * Signs the head of every tenant whose head moved since its last
   * checkpoint with this key. Only one replica at a time: another that holds
   * the lock makes this return null at once.
   */
  checkpointMovedHeads(keyId: string, sign: HeadSigner): Promise<number | null> {
    return withSystemScope(this.pool, async (db) => {
      const lock = await db.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock($1) AS ok", [CHECKPOINT_LOCK.toString()]);
      if (!lock.rows[0]!.ok) return null;
      const moved = await db.query<{ tenant_id: string; sequence: string; hash: string }>(
        `SELECT h.tenant_id, h.sequence, h.hash FROM chain_heads h
          WHERE h.sequence > coalesce((SELECT max(c.sequence) FROM checkpoints c WHERE c.tenant_id = h.tenant_id AND c.key_id = $1), 0)`,
        [keyId],
      );
      const signed = moved.rows.map((h) => sign({ tenantId: h.tenant_id, sequence: BigInt(h.sequence), hash: h.hash }));
      if (signed.length) await db.query(INSERT, insertValues(signed));
      return signed.length;
    });
  }
}
