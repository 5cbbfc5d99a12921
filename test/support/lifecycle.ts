// Helpers of the data lifecycle tests (retention, erasure): an archive store
// on the run's S3-compatible server, events written with a chosen receive
// time, waiting for the indexer, chain verification, a tenant's documents.
import type { Client } from "@elastic/elasticsearch";
import type pg from "pg";
import { inject } from "vitest";
import { ArchiveStore } from "../../src/archive/object-store.ts";
import { S3PROXY_CREDENTIAL, S3PROXY_IDENTITY } from "../../src/devservers/s3proxy.ts";
import { chainRange, RangeVerification } from "../../src/domain/chain-verification.ts";
import type { EventRecord } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { microsFromDate } from "../../src/domain/timestamp.ts";
import { indexNames } from "../../src/search/elasticsearch/index-names.ts";
import { EventReader } from "../../src/store/event-reader.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { committedHeadSystem, indexedPosition } from "../../src/store/index-progress.ts";

export const DAY = 86_400_000;

export function archiveStoreForTests(prefix: string): ArchiveStore {
  const external = process.env.S3_URL !== undefined;
  return new ArchiveStore({
    endpoint: inject("s3Url"),
    bucket: "auditlog-test",
    region: "us-east-1",
    prefix,
    credentials:
      external && process.env.AWS_ACCESS_KEY_ID
        ? { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? "" }
        : { accessKeyId: S3PROXY_IDENTITY, secretAccessKey: S3PROXY_CREDENTIAL },
  });
}

/** Event i by `actor`, whose personal data is in every personal field. */
export function record(i: number, actor: string, base: Date): EventRecord {
  return {
    id: `ev-${i}`,
    occurredAt: microsFromDate(new Date(base.getTime() - 40 * DAY + i)),
    action: "invoice.billed",
    actor: { id: actor, type: "USER", name: `Name of ${actor}`, ip: "10.1.2.3", userAgent: "vitest", sessionId: `s-${actor}` },
    target: { type: "invoice", id: `inv-${i % 97}`, name: "" },
    outcome: "SUCCESS",
    severity: "INFO",
    context: { requestId: `req-${i}`, traceId: "", source: "billing", location: "Paris" },
    changes: i % 7 === 0 ? { before: { owner: actor }, after: null } : null,
    metadata: { email: `${actor}@example.com`, n: i },
    message: `invoice billed by ${actor}`,
  };
}

export async function writeEvents(
  pool: pg.Pool,
  tenantId: string,
  first: number,
  count: number,
  receivedAt: Date,
  actor: (i: number) => string,
): Promise<void> {
  for (let i = first; i < first + count; i += 1000) {
    const items: WriteItem[] = [];
    for (let j = i; j < Math.min(first + count, i + 1000); j++) {
      const r = record(j, actor(j), receivedAt);
      items.push({ tenantId, record: r, ...sealContent(r) });
    }
    await writeBatch(pool, items, () => microsFromDate(receivedAt));
  }
}

export async function waitIndexed(pool: pg.Pool, tenantId: string): Promise<void> {
  const head = await committedHeadSystem(pool, tenantId);
  const deadline = Date.now() + 300_000;
  while ((await indexedPosition(pool, tenantId)) < head) {
    if (Date.now() > deadline) throw new Error(`indexing of ${tenantId} did not finish`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function verifyChain(pool: pg.Pool, tenantId: string) {
  const v = new RangeVerification(chainRange(0n, 0n));
  await new EventReader(pool).walkChain(tenantId, v.range.from, v.range.to, v.start);
  return v.verdict();
}

export async function documents(client: Client, alias: string, tenantId: string): Promise<{ sequence: number; source: string }[]> {
  await client.indices.refresh({ index: alias, ignore_unavailable: true, allow_no_indices: true });
  const out: { sequence: number; source: string }[] = [];
  let after: unknown[] | undefined;
  for (;;) {
    const res = await client.search<{ sequence: number }>({
      index: alias,
      routing: tenantId,
      size: 10_000,
      query: { term: { tenant_id: tenantId } },
      sort: [{ sequence: "asc" }],
      ignore_unavailable: true,
      allow_no_indices: true,
      ...(after ? { search_after: after as never } : {}),
    });
    const hits = res.hits.hits;
    for (const h of hits) out.push({ sequence: h._source!.sequence, source: JSON.stringify(h._source) });
    if (hits.length < 10_000) return out;
    after = hits[hits.length - 1]!.sort;
  }
}

/** Removes what a test's index prefix created (its monthly indices and template). */
export async function dropTestIndices(client: Client, prefix: string): Promise<void> {
  await client.indices.delete({ index: indexNames(prefix).pattern, ignore_unavailable: true, allow_no_indices: true }).catch(() => {});
  await client.indices.deleteIndexTemplate({ name: indexNames(prefix).templateName }).catch(() => {});
}
