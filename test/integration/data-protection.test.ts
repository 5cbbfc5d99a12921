// Masking at ingest and encryption at rest, end to end on the real service
// with PostgreSQL and Elasticsearch: a password inside metadata is found in
// clear nowhere (the raw row, the raw search document, an export), and the
// encrypted changes are ciphertext in both stores but readable through the
// API for a query key, across a data key rotation.
import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService } from "../../gen/auditlog/v1/admin_pb.js";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const SECRET = "hunter2-correct-horse";
const SALARY = "salary-91234-eur";
const prefix = `test-dataprot-${randomBytes(4).toString("hex")}`;

let svc: TestService;
let tenant: TenantKeys;
let db: pg.Client;
const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });

beforeAll(async () => {
  svc = await startTestService({
    ELASTICSEARCH_URL: inject("elasticsearchUrl"),
    AUDITLOG_ES_INDEX_PREFIX: prefix,
    AUDITLOG_RECONCILE_INTERVAL_MS: "0",
    AUDITLOG_KEK: randomBytes(32).toString("base64"),
    AUDITLOG_KEK_ID: "test-kek",
  });
  tenant = await createTenantWithKeys(svc.url, `dp-${randomBytes(3).toString("hex")}`);
  db = new pg.Client({ connectionString: svc.databaseUrl });
  await db.connect();
}, 120_000);

afterAll(async () => {
  await db?.end();
  await svc?.stop();
  const es = inject("elasticsearchUrl");
  await fetch(`${es}/${prefix}-*`, { method: "DELETE" });
  await fetch(`${es}/_index_template/${prefix}`, { method: "DELETE" });
});

const clients = () => {
  const t = createGrpcTransport({ baseUrl: svc.url });
  return { ingest: createClient(IngestService, t), query: createClient(QueryService, t), admin: createClient(AdminService, t) };
};

async function append(id: string, extra: Record<string, unknown> = {}): Promise<bigint> {
  const r = await clients().ingest.append(
    {
      events: [
        {
          id,
          occurredAt: { seconds: 1_796_000_000n },
          action: "user.password.changed",
          actor: { id: "user-1" },
          metadata: { password: SECRET, login: { apiKey: "sk_live_abc" }, plan: "pro" },
          changes: { before: { salary: SALARY }, after: { salary: `${SALARY}-new`, password: SECRET } },
          message: "paid with 4111 1111 1111 1111, contact ada@example.com",
          ...extra,
        },
      ],
    },
    as(tenant.ingest),
  );
  expect(r.summary?.accepted).toBe(1n);
  return r.summary!.position;
}

async function rawRow(id: string): Promise<string> {
  const r = await db.query("SELECT row_to_json(e)::text AS row FROM events e WHERE tenant_id = $1 AND id = $2", [tenant.tenantId, id]);
  expect(r.rowCount).toBe(1);
  return r.rows[0].row as string;
}

async function rawDocument(id: string): Promise<string> {
  const es = inject("elasticsearchUrl");
  const r = await fetch(`${es}/${prefix}-*/_search`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: { bool: { filter: [{ term: { tenant_id: tenant.tenantId } }, { term: { id } }] } } }),
  });
  const body = (await r.json()) as { hits: { hits: { _source: unknown }[] } };
  expect(body.hits.hits).toHaveLength(1);
  return JSON.stringify(body.hits.hits[0]!._source);
}

describe("data protection", () => {
  it("never stores a password, an API key or a card number in clear: not in PostgreSQL, Elasticsearch or an export", async () => {
    const position = await append("dp-1");
    const { query } = clients();
    // Waits for the index (minPosition), so the raw document exists.
    const page = await query.searchEvents({ filter: { ids: ["dp-1"] }, minPosition: position }, as(tenant.query));
    expect(page.events).toHaveLength(1);
    for (const raw of [await rawRow("dp-1"), await rawDocument("dp-1")]) {
      expect(raw).not.toContain(SECRET);
      expect(raw).not.toContain("sk_live_abc");
      expect(raw).not.toContain("4111 1111 1111 1111");
      expect(raw).toContain("[masked:password]");
      expect(raw).toContain("[masked:card ****1111]");
      // The changes are ciphertext at rest.
      expect(raw).not.toContain(SALARY);
      expect(raw).toContain("$encrypted");
    }
    const exported = await fetch(`${svc.url}/v1/export?format=ndjson`, { headers: { authorization: `Bearer ${tenant.query}` } });
    const text = await exported.text();
    expect(exported.status).toBe(200);
    expect(text).toContain("dp-1");
    expect(text).not.toContain(SECRET);
  });

  it("answers the masked metadata and the decrypted changes to a query key", async () => {
    const got = await clients().query.getEvent({ id: "dp-1" }, as(tenant.query));
    const e = got.event!.event!;
    expect(e.metadata).toEqual({ password: "[masked:password]", login: { apiKey: "[masked:apikey]" }, plan: "pro" });
    expect(e.changes?.before).toEqual({ salary: SALARY });
    // Masked before it was encrypted.
    expect(e.changes?.after).toEqual({ salary: `${SALARY}-new`, password: "[masked:password]" });
    expect(e.message).toBe("paid with [masked:card ****1111], contact ada@example.com");
  });

  it("applies new masking rules at once on this replica, and the default set again after use_default", async () => {
    const { admin, query } = clients();
    const before = await admin.getMaskingRules({ tenantId: tenant.tenantId }, as(BOOTSTRAP_KEY));
    expect(before.isDefault).toBe(true);
    const set = await admin.setMaskingRules(
      { rules: { keys: ["password"], patterns: ["card", "email"], paths: ["metadata.plan"] } },
      as(tenant.admin),
    );
    expect(set.isDefault).toBe(false);
    await append("dp-2");
    const e = (await query.getEvent({ id: "dp-2" }, as(tenant.query))).event!.event!;
    expect(e.message).toBe("paid with [masked:card ****1111], contact [masked:email]");
    // apiKey is no longer a rule; plan is masked by its path.
    expect(e.metadata).toEqual({ password: "[masked:password]", login: { apiKey: "sk_live_abc" }, plan: "[masked:metadata.plan]" });
    const reset = await admin.setMaskingRules({ useDefault: true }, as(tenant.admin));
    expect(reset.isDefault).toBe(true);
    expect(reset.rules?.keys).toContain("api_key");
  });

  it("refuses a bad rule by field", async () => {
    const err = await clients()
      .admin.setMaskingRules({ rules: { keys: [], patterns: [], paths: ["actor.id"] } }, as(tenant.admin))
      .catch((e: unknown) => e);
    expect(String(err)).toMatch(/invalid_argument/);
    expect(String(err)).toMatch(/dotted path/);
  });

  it("rotates the data key: new writes use the new key, old rows still decrypt, and the chain verifies", async () => {
    const { admin, query } = clients();
    const keyOf = async (id: string) => /"kid":\s*"(dk_[0-9a-f]+)"/.exec(await rawRow(id))![1];
    const oldKey = await keyOf("dp-1");
    const rotated = await admin.rotateDataKey({ tenantId: tenant.tenantId }, as(BOOTSTRAP_KEY));
    expect(rotated.kekId).toBe("test-kek");
    expect(rotated.keyId).not.toBe(oldKey);
    await append("dp-3");
    expect(await keyOf("dp-3")).toBe(rotated.keyId);
    for (const id of ["dp-1", "dp-3"]) {
      const e = (await query.getEvent({ id }, as(tenant.query))).event!.event!;
      expect(e.changes?.before).toEqual({ salary: SALARY });
    }
    const verified = await query.verifyChain({}, as(tenant.query));
    expect(verified.ok).toBe(true);
  });

  it("keeps a Connect client's view equal to gRPC's", async () => {
    const q = createClient(QueryService, createConnectTransport({ baseUrl: svc.url, httpVersion: "1.1" }));
    const e = (await q.getEvent({ id: "dp-1" }, as(tenant.query))).event!.event!;
    expect(e.changes?.before).toEqual({ salary: SALARY });
  });
});
