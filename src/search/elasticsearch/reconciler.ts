// The reconciler: checks that Elasticsearch holds exactly the tenant's
// events up to its indexed_sequence, and repairs it where it does not.
//
// Check: per time window of occurred_at (day or hour, UTC), the number of
// events and a checksum (sum of idHash(id)) on both sides, each from one
// aggregation (PostgreSQL: GROUP BY date_trunc; Elasticsearch: composite
// date_histogram with a sum of id_hash), limited to sequence <= indexed.
// Events above indexed_sequence are the indexer's business and ignored,
// so the check runs safely beside a working indexer. Events recorded in
// index_failures (refused by Elasticsearch for their content) are not
// expected in the index: counting them as missing would retry them every
// round, forever.
//
// Repair, only in windows that differ: the ids on both sides are compared;
// events missing from the index are indexed again (the same documents the
// indexer writes), and documents with no such event in PostgreSQL (or with
// another sequence, another _id, in the wrong monthly index (by received_at),
// or a second copy) are deleted. A re-indexed event that Elasticsearch
// refuses for its content is recorded in index_failures, as the indexer does.
//
// Also checked: documents of the tenant that claim a sequence above
// indexed_sequence or have none. Those above the chain head (read after
// the search, so every legitimate document is below it) or disagreeing with
// PostgreSQL are deleted; legitimate ones are the indexer's work in flight.
//
// Works on the integ-test Elasticsearch too: no _delete_by_query (module
// absent there), deletions go through bulk with each document's routing.
import type { Client } from "@elastic/elasticsearch";
import pg from "pg";
import type { Pool } from "pg";
import type { Logger } from "../../platform/log.ts";
import { Periodic } from "../../platform/periodic.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../store/event-rows.ts";
import { systemQuery, withSystemScope } from "../../store/system-scope.ts";
import { documentFromRecord, documentId } from "./event-document.ts";
import { committedHeadSystem, indexedPosition, NOT_REFUSED, recordRefusals, type Refusal, tenantIds } from "../../store/index-progress.ts";
import { classifyItemFailure, refusalReason } from "./index-failures.ts";
import { searchableFrom } from "../../store/retention-store.ts";
import { indexNames, type IndexNames } from "./index-names.ts";

export type ReconcileWindow = "day" | "hour";

/** Advisory lock key of the periodic reconciler: one round at a time across replicas. */
export const RECONCILER_LOCK_KEY = 7_428_113_003n;

export type ReconcilerOptions = {
  pool: Pool;
  client: Client;
  log: Logger;
  /** Index name prefix (index-names.ts). Default "auditlog-events". */
  prefix?: string;
  /** Default window size. Default "day". */
  window?: ReconcileWindow;
  /** Hits per search page and documents per repair bulk. Default 5000. */
  pageSize?: number;
  /** At most this many windows are listed in a report's details. Default 100. */
  maxDetailWindows?: number;
  lockKey?: bigint;
  /** Each tenant's outcome in a round (metrics): clean, repaired (with counts) or failed. */
  onResult?: (outcome: "clean" | "repaired" | "failed", eventsRepaired: number, documentsRemoved: number) => void;
};

export type WindowGap = {
  start: string;
  end: string;
  postgresql: { count: number; checksum: string };
  elasticsearch: { count: number; checksum: string };
  missing: number;
  removed: number;
  /** Up to 10 event ids re-indexed and document ids removed, for the record. */
  missingIds: string[];
  removedIds: string[];
};

export type ReconcileDetails = {
  window: ReconcileWindow;
  indexedSequence: string;
  gaps: WindowGap[];
  /** When more windows had gaps than are listed. */
  gapsNotListed: number;
  /** Documents claiming a sequence above indexed_sequence (or none). */
  beyondIndexed: { checked: number; removed: number; removedIds: string[] };
};

export type ReconcileReport = {
  id: bigint;
  tenantId: string;
  finishedAt: Date;
  windowsChecked: number;
  windowsWithGaps: number;
  eventsRepaired: number;
  documentsRemoved: number;
  details: ReconcileDetails;
};

type Bucket = { count: bigint; checksum: bigint };
type EsHit = { _id: string; _index: string; _routing?: string; fields?: { id?: string[]; sequence?: number[] } };
type PgId = { id: string; sequence: bigint; receivedAt: string };

const RECEIVED_AT_TEXT = `to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

const TRUNC: Record<ReconcileWindow, { pg: string; es: string; ms: number }> = {
  day: { pg: "day", es: "1d", ms: 86_400_000 },
  hour: { pg: "hour", es: "1h", ms: 3_600_000 },
};

export class Reconciler {
  private readonly pool: Pool;
  private readonly client: Client;
  private readonly log: Logger;
  private readonly names: IndexNames;
  private readonly window: ReconcileWindow;
  private readonly pageSize: number;
  private readonly maxDetailWindows: number;
  private readonly lockKey: bigint;
  private readonly onResult: ReconcilerOptions["onResult"];
  private periodic: Periodic | null = null;
  private stopped = false;

  constructor(opts: ReconcilerOptions) {
    this.pool = opts.pool;
    this.client = opts.client;
    this.log = opts.log.child({ component: "search-reconciler" });
    this.names = indexNames(opts.prefix);
    this.window = opts.window ?? "day";
    this.pageSize = opts.pageSize ?? 5000;
    this.maxDetailWindows = opts.maxDetailWindows ?? 100;
    this.lockKey = opts.lockKey ?? RECONCILER_LOCK_KEY;
    this.onResult = opts.onResult;
  }

  async reconcileTenant(tenantId: string, opts: { window?: ReconcileWindow } = {}): Promise<ReconcileReport> {
    const window = opts.window ?? this.window;
    const indexed = await indexedPosition(this.pool, tenantId);
    // Retention removed the documents received before this from the index
    // on purpose: compare (and repair) only from there on.
    const since = await searchableFrom(this.pool, tenantId);

    const [pgWindows, esWindows] = await Promise.all([
      this.postgresWindows(tenantId, indexed, window, since),
      this.elasticsearchWindows(tenantId, indexed, window, since),
    ]);
    const keys = [...new Set([...pgWindows.keys(), ...esWindows.keys()])].sort((a, b) => a - b);
    const gaps: WindowGap[] = [];
    let eventsRepaired = 0;
    let documentsRemoved = 0;
    let windowsWithGaps = 0;
    const zero: Bucket = { count: 0n, checksum: 0n };
    for (const key of keys) {
      const p = pgWindows.get(key) ?? zero;
      const e = esWindows.get(key) ?? zero;
      if (p.count === e.count && p.checksum === e.checksum) continue;
      windowsWithGaps++;
      const start = new Date(key).toISOString();
      const end = new Date(key + TRUNC[window].ms).toISOString();
      const fixed = await this.repairWindow(tenantId, indexed, start, end, since);
      eventsRepaired += fixed.missingIds.length;
      documentsRemoved += fixed.removedIds.length;
      if (gaps.length < this.maxDetailWindows) {
        gaps.push({
          start,
          end,
          postgresql: { count: Number(p.count), checksum: p.checksum.toString() },
          elasticsearch: { count: Number(e.count), checksum: e.checksum.toString() },
          missing: fixed.missingIds.length,
          removed: fixed.removedIds.length,
          missingIds: fixed.missingIds.slice(0, 10),
          removedIds: fixed.removedIds.slice(0, 10),
        });
      }
    }

    const beyond = await this.checkBeyondIndexed(tenantId, indexed);
    documentsRemoved += beyond.removedIds.length;

    const details: ReconcileDetails = {
      window,
      indexedSequence: indexed.toString(),
      gaps,
      gapsNotListed: windowsWithGaps - gaps.length,
      beyondIndexed: { checked: beyond.checked, removed: beyond.removedIds.length, removedIds: beyond.removedIds.slice(0, 10) },
    };
    const { rows } = await systemQuery<{ id: string; finished_at: Date }>(
      this.pool,
      `INSERT INTO reconcile_reports (tenant_id, windows_checked, windows_with_gaps, events_repaired, documents_removed, details)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, finished_at`,
      [tenantId, keys.length, windowsWithGaps, eventsRepaired, documentsRemoved, JSON.stringify(details)],
    );
    const report: ReconcileReport = {
      id: BigInt(rows[0]!.id),
      tenantId,
      finishedAt: rows[0]!.finished_at,
      windowsChecked: keys.length,
      windowsWithGaps,
      eventsRepaired,
      documentsRemoved,
      details,
    };
    const fields = {
      tenant: tenantId,
      indexedSequence: indexed,
      windowsChecked: keys.length,
      windowsWithGaps,
      eventsRepaired,
      documentsRemoved,
    };
    if (windowsWithGaps > 0 || documentsRemoved > 0) this.log.warn("search index differed from PostgreSQL; repaired", fields);
    else this.log.debug("search index matches PostgreSQL", fields);
    return report;
  }

  /**
   * Reconciles every tenant every `intervalMs` (the first round after one
   * interval). Across replicas one round runs at a time (advisory lock);
   * a replica that finds the lock taken skips its round.
   */
  runPeriodically(intervalMs: number, opts: { window?: ReconcileWindow } = {}): void {
    this.periodic ??= new Periodic(
      () => this.runRound(opts),
      (err) => this.log.warn("reconcile round failed", { err }),
    );
    this.periodic.start(intervalMs);
  }

  /** Stops the periodic runs; a round in progress finishes its current tenant. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.periodic?.stop();
  }

  /** One round over all tenants (what runPeriodically runs). False when another replica holds the lock. */
  async reconcileAll(opts: { window?: ReconcileWindow } = {}): Promise<boolean> {
    const lock = new pg.Client(this.pool.options);
    // Losing the lock connection ends this round's claim; the queries fail on their own.
    lock.on("error", (err) => this.log.warn("reconciler lock connection failed", { err: err.message }));
    await lock.connect();
    try {
      const got = await lock.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [this.lockKey.toString()]);
      if (!got.rows[0]?.ok) return false;
      const tenants = await tenantIds(this.pool);
      let gaps = 0;
      let failed = 0;
      for (const tenant_id of tenants) {
        if (this.stopped) break;
        try {
          const r = await this.reconcileTenant(tenant_id, opts);
          const repaired = r.windowsWithGaps > 0 || r.documentsRemoved > 0;
          if (repaired) gaps++;
          this.onResult?.(repaired ? "repaired" : "clean", r.eventsRepaired, r.documentsRemoved);
        } catch (err) {
          failed++;
          this.onResult?.("failed", 0, 0);
          this.log.warn("reconcile failed for a tenant", { tenant: tenant_id, err: (err as Error).message });
        }
      }
      this.log.info("reconcile round done", { tenants: tenants.length, tenantsRepaired: gaps, tenantsFailed: failed });
      return true;
    } finally {
      await lock.end().catch(() => {});
    }
  }

  private async runRound(opts: { window?: ReconcileWindow }): Promise<void> {
    try {
      await this.reconcileAll(opts);
    } catch (err) {
      this.log.warn("reconcile round failed", { err: (err as Error).message });
    }
  }

  // -------------------------------------------------------------------------

  private async postgresWindows(
    tenantId: string,
    indexed: bigint,
    window: ReconcileWindow,
    since: string | null,
  ): Promise<Map<number, Bucket>> {
    const out = new Map<number, Bucket>();
    if (indexed === 0n) return out;
    const { rows } = await systemQuery<{ k: string; n: string; h: string }>(
      this.pool,
      `SELECT (extract(epoch FROM date_trunc($3, occurred_at, 'UTC')) * 1000)::bigint AS k,
              count(*) AS n,
              sum(('x' || left(md5(id), 8))::bit(32)::bigint) AS h
         FROM events
        WHERE tenant_id = $1 AND sequence <= $2 AND ${NOT_REFUSED}
          AND ($4::timestamptz IS NULL OR received_at >= $4::timestamptz)
        GROUP BY 1`,
      [tenantId, indexed.toString(), TRUNC[window].pg, since],
    );
    for (const r of rows) out.set(Number(r.k), { count: BigInt(r.n), checksum: BigInt(r.h) });
    return out;
  }

  private async elasticsearchWindows(
    tenantId: string,
    indexed: bigint,
    window: ReconcileWindow,
    since: string | null,
  ): Promise<Map<number, Bucket>> {
    const out = new Map<number, Bucket>();
    if (indexed === 0n) return out;
    let after: Record<string, unknown> | undefined;
    for (;;) {
      const res = await this.client.search({
        index: this.names.alias,
        routing: tenantId,
        ignore_unavailable: true,
        allow_no_indices: true,
        size: 0,
        track_total_hits: false,
        query: {
          bool: {
            filter: [
              { term: { tenant_id: tenantId } },
              { range: { sequence: { lte: indexed.toString() } } },
              ...(since ? [{ range: { received_at: { gte: since } } }] : []),
            ],
          },
        },
        aggs: {
          w: {
            composite: {
              size: 10_000,
              sources: [{ t: { date_histogram: { field: "occurred_at", fixed_interval: TRUNC[window].es, time_zone: "UTC" } } }],
              ...(after ? { after } : {}),
            },
            aggs: { h: { sum: { field: "id_hash" } } },
          },
        },
      });
      const agg = res.aggregations?.w as
        | { buckets: { key: { t: number }; doc_count: number; h: { value: number } }[]; after_key?: Record<string, unknown> }
        | undefined;
      if (!agg) break;
      for (const b of agg.buckets) {
        // Sums of 32-bit hashes stay below 2^53 (exact in a double) up to 2^21 events per window.
        out.set(b.key.t, { count: BigInt(b.doc_count), checksum: BigInt(Math.round(b.h.value)) });
      }
      if (agg.buckets.length === 0 || !agg.after_key) break;
      after = agg.after_key;
    }
    return out;
  }

  /** Compares the ids of one window on both sides; re-indexes the missing, deletes the wrong. */
  private async repairWindow(
    tenantId: string,
    indexed: bigint,
    start: string,
    end: string,
    since: string | null,
  ): Promise<{ missingIds: string[]; removedIds: string[] }> {
    const { rows } = await systemQuery<{ id: string; sequence: string; received_at: string }>(
      this.pool,
      `SELECT id, sequence, ${RECEIVED_AT_TEXT} AS received_at
         FROM events
        WHERE tenant_id = $1 AND sequence <= $2 AND occurred_at >= $3::timestamptz AND occurred_at < $4::timestamptz
          AND ${NOT_REFUSED} AND ($5::timestamptz IS NULL OR received_at >= $5::timestamptz)`,
      [tenantId, indexed.toString(), start, end, since],
    );
    const pgById = new Map<string, PgId>(rows.map((r) => [r.id, { id: r.id, sequence: BigInt(r.sequence), receivedAt: r.received_at }]));
    const hits = await this.scan(tenantId, {
      bool: {
        filter: [
          { term: { tenant_id: tenantId } },
          { range: { occurred_at: { gte: start, lt: end } } },
          { range: { sequence: { lte: indexed.toString() } } },
          ...(since ? [{ range: { received_at: { gte: since } } }] : []),
        ],
      },
    });
    const present = new Set<string>();
    const remove: EsHit[] = [];
    for (const hit of hits) {
      const id = hit.fields?.id?.[0];
      const seq = hit.fields?.sequence?.[0];
      const ev = id === undefined ? undefined : pgById.get(id);
      if (ev && this.isDocumentOf(tenantId, hit, ev, seq) && !present.has(ev.id)) present.add(ev.id);
      else remove.push(hit);
    }
    const missing = [...pgById.values()].filter((e) => !present.has(e.id));
    await this.reindex(
      tenantId,
      missing.map((e) => e.sequence),
    );
    await this.remove(remove);
    return { missingIds: missing.map((e) => e.id), removedIds: remove.map((h) => h._id) };
  }

  /** Documents of the tenant with no sequence or one above indexed_sequence. */
  private async checkBeyondIndexed(tenantId: string, indexed: bigint): Promise<{ checked: number; removedIds: string[] }> {
    const hits = await this.scan(tenantId, {
      bool: { filter: [{ term: { tenant_id: tenantId } }], must_not: [{ range: { sequence: { lte: indexed.toString() } } }] },
    });
    if (hits.length === 0) return { checked: 0, removedIds: [] };
    // Read after the search: every document the indexer had written by then
    // belongs to an event committed by then, so at or below this head.
    const head = await committedHeadSystem(this.pool, tenantId);
    const seqs = [
      ...new Set(
        hits.flatMap((h) => {
          const s = h.fields?.sequence?.[0];
          return s !== undefined && BigInt(s) > indexed && BigInt(s) <= head ? [String(s)] : [];
        }),
      ),
    ];
    const bySeq = new Map<bigint, PgId>();
    if (seqs.length > 0) {
      const { rows } = await systemQuery<{ id: string; sequence: string; received_at: string }>(
        this.pool,
        `SELECT id, sequence, ${RECEIVED_AT_TEXT} AS received_at
           FROM events WHERE tenant_id = $1 AND sequence = ANY($2::bigint[])`,
        [tenantId, seqs],
      );
      for (const r of rows) bySeq.set(BigInt(r.sequence), { id: r.id, sequence: BigInt(r.sequence), receivedAt: r.received_at });
    }
    const seen = new Set<string>();
    const remove: EsHit[] = [];
    for (const hit of hits) {
      const seq = hit.fields?.sequence?.[0];
      const ev = seq === undefined ? undefined : bySeq.get(BigInt(seq));
      if (ev && hit.fields?.id?.[0] === ev.id && this.isDocumentOf(tenantId, hit, ev, seq) && !seen.has(ev.id)) seen.add(ev.id);
      else remove.push(hit);
    }
    await this.remove(remove);
    return { checked: hits.length, removedIds: remove.map((h) => h._id) };
  }

  /** The document the indexer writes for this event: right _id, sequence, monthly index and routing. */
  private isDocumentOf(tenantId: string, hit: EsHit, ev: PgId, seq: number | undefined): boolean {
    return (
      hit._id === documentId(tenantId, ev.id) &&
      seq !== undefined &&
      BigInt(seq) === ev.sequence &&
      hit._index === this.names.indexFor(ev.receivedAt) &&
      (hit._routing === undefined || hit._routing === tenantId)
    );
  }

  /** All hits of a query (ids, sequence, index, routing), paged with a point in time and search_after. */
  private async scan(tenantId: string, query: object): Promise<EsHit[]> {
    let pit: string;
    try {
      pit = (await this.client.openPointInTime({ index: this.names.alias, keep_alive: "1m", routing: tenantId, ignore_unavailable: true }))
        .id;
    } catch (err) {
      if ((err as { meta?: { statusCode?: number } }).meta?.statusCode === 404) return []; // no index yet
      throw err;
    }
    const out: EsHit[] = [];
    try {
      let after: unknown[] | undefined;
      for (;;) {
        const res = await this.client.search({
          pit: { id: pit, keep_alive: "1m" },
          size: this.pageSize,
          track_total_hits: false,
          _source: false,
          docvalue_fields: ["id", "sequence"],
          query: query as never,
          sort: [{ _shard_doc: "asc" }],
          ...(after ? { search_after: after as never } : {}),
        });
        if (res.pit_id) pit = res.pit_id;
        const hits = res.hits.hits as unknown as (EsHit & { sort?: unknown[] })[];
        for (const h of hits) out.push({ _id: h._id, _index: h._index, _routing: h._routing, fields: h.fields });
        if (hits.length < this.pageSize) break;
        after = hits[hits.length - 1]!.sort;
      }
    } finally {
      await this.client.closePointInTime({ id: pit }).catch(() => {});
    }
    return out;
  }

  /** Indexes the given events again (as the indexer would), searchable on return. */
  private async reindex(tenantId: string, sequences: bigint[]): Promise<void> {
    for (let i = 0; i < sequences.length; i += this.pageSize) {
      const chunk = sequences.slice(i, i + this.pageSize).map(String);
      const { rows } = await systemQuery<EventRow>(
        this.pool,
        `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND sequence = ANY($2::bigint[]) ORDER BY sequence`,
        [tenantId, chunk],
      );
      if (rows.length === 0) continue;
      const operations: unknown[] = [];
      for (const row of rows) {
        const doc = documentFromRecord(recordFromRow(row));
        operations.push(
          { index: { _index: this.names.indexFor(doc.received_at), _id: documentId(tenantId, doc.id), routing: tenantId } },
          doc,
        );
      }
      const res = await this.client.bulk({ operations, refresh: "wait_for" });
      const refused: Refusal[] = [];
      const failed: string[] = [];
      res.items.forEach((it, i) => {
        const r = it.index;
        const status = r?.status ?? 0;
        if (status >= 200 && status <= 299 && !r?.error) return;
        const f = { status, type: r?.error?.type ?? "unknown", reason: r?.error?.reason ?? JSON.stringify(it) };
        if (classifyItemFailure(f) === "document" && rows[i])
          refused.push({ sequence: BigInt(rows[i].sequence), eventId: rows[i].id, reason: refusalReason(f) });
        else failed.push(`${r?._id}: ${f.type}: ${f.reason}`);
      });
      await withSystemScope(this.pool, (db) => recordRefusals(db, tenantId, refused));
      if (refused.length > 0)
        this.log.warn("re-indexed events refused for their content; recorded in index_failures", {
          tenant: tenantId,
          refused: refused.length,
        });
      if (failed.length > 0) throw new Error(`re-indexing ${failed.length} of ${rows.length} events failed, first ${failed[0]}`);
    }
  }

  private async remove(hits: EsHit[]): Promise<void> {
    for (let i = 0; i < hits.length; i += this.pageSize) {
      const operations = hits
        .slice(i, i + this.pageSize)
        .map((h) => ({ delete: { _index: h._index, _id: h._id, ...(h._routing !== undefined ? { routing: h._routing } : {}) } }));
      const res = await this.client.bulk({ operations, refresh: "wait_for" });
      const failed = res.items.filter((it) => {
        const s = it.delete?.status ?? 0;
        return !(s >= 200 && s <= 299) && s !== 404;
      });
      if (failed.length > 0) {
        const f = failed[0]!.delete;
        throw new Error(`deleting ${failed.length} documents failed, first ${f?._id}: ${f?.error?.type}: ${f?.error?.reason}`);
      }
    }
  }
}
