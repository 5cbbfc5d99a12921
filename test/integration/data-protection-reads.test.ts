// Encryption at rest on every read path, on the real service with
// PostgreSQL and Elasticsearch: GetEvent, SearchEvents, ExportEvents, GET
// /v1/export (NDJSON and CSV) and TailEvents (catch-up and live) answer the
// decrypted changes to callers allowed to see protected content (a query
// key, an auditor's token) and the stored envelope to a User's token, while
// the raw PostgreSQL row and the raw Elasticsearch document hold ciphertext.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toJsonString } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { StoredEventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { ExportFormat, QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { chainHash, contentHash } from "../../src/domain/hash-chain.ts";
import { readNdjsonExport } from "../../src/domain/offline-verification.ts";
import { signWith } from "../support/jwks-server.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const CLEAR = `salary-${randomBytes(4).toString("hex")}`;
const HS_SECRET = randomBytes(32).toString("hex");
const HS_KEY = new TextEncoder().encode(HS_SECRET);
const ISSUER = "https://idp.test";
const AUDIENCE = "auditlog-test";
const prefix = `test-dpreads-${randomBytes(4).toString("hex")}`;

let svc: TestService;
let tenant: TenantKeys;
let db: pg.Client;
let position: bigint;
/** Bearer credentials of each caller. */
const callers: Record<"queryKey" | "auditor" | "user", string> = { queryKey: "", auditor: "", user: "" };
const ALLOWED = ["queryKey", "auditor"] as const;
const auth = (credential: string) => ({ authorization: `Bearer ${credential}` });

const token = (claims: Record<string, unknown>) => signWith(HS_KEY, "HS256", undefined, claims, { issuer: ISSUER, audience: AUDIENCE });

beforeAll(async () => {
  const keyFile = join(mkdtempSync(join(tmpdir(), "dpreads-")), "checkpoint.pem");
  writeFileSync(keyFile, generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  svc = await startTestService({
    AUDITLOG_CHECKPOINT_KEY_FILE: keyFile,
    ELASTICSEARCH_URL: inject("elasticsearchUrl"),
    AUDITLOG_ES_INDEX_PREFIX: prefix,
    AUDITLOG_RECONCILE_INTERVAL_MS: "0",
    AUDITLOG_KEK: randomBytes(32).toString("base64"),
    AUDITLOG_KEK_ID: "test-kek",
    AUDITLOG_JWT_HS256_SECRET: HS_SECRET,
    AUDITLOG_JWT_ISSUER: ISSUER,
    AUDITLOG_JWT_AUDIENCE: AUDIENCE,
    AUDITLOG_JWT_ALGORITHMS: "HS256",
  });
  tenant = await createTenantWithKeys(svc.url, `dpr-${randomBytes(3).toString("hex")}`);
  callers.queryKey = tenant.query;
  callers.auditor = await token({ sub: "carol", role: "auditor", tenants: [tenant.tenantId] });
  // The event's own actor: a User sees the event, only not its protected content.
  callers.user = await token({ sub: "user-1", role: "user", tenants: [tenant.tenantId] });
  db = new pg.Client({ connectionString: svc.databaseUrl });
  await db.connect();
  position = await append("r-1");
  // Waits for the index, so that searches and exports find the event and its raw document exists.
  const page = await query(grpc()).searchEvents({ filter: { ids: ["r-1"] }, minPosition: position }, { headers: auth(tenant.query) });
  expect(page.events).toHaveLength(1);
}, 120_000);

afterAll(async () => {
  await db?.end();
  await svc?.stop();
  const es = inject("elasticsearchUrl");
  await fetch(`${es}/${prefix}-*`, { method: "DELETE" });
  await fetch(`${es}/_index_template/${prefix}`, { method: "DELETE" });
});

const grpc = () => createGrpcTransport({ baseUrl: svc.url });
const connectJson = () => createConnectTransport({ baseUrl: svc.url, httpVersion: "1.1" });
const query = (t: Transport): Client<typeof QueryService> => createClient(QueryService, t);

async function append(id: string): Promise<bigint> {
  const r = await createClient(IngestService, grpc()).append(
    {
      events: [
        {
          id,
          occurredAt: { seconds: 1_796_000_000n },
          action: "employee.updated",
          actor: { id: "user-1" },
          changes: { before: { salary: CLEAR }, after: { salary: `${CLEAR}-new` } },
        },
      ],
    },
    { headers: auth(tenant.ingest) },
  );
  expect(r.summary?.accepted).toBe(1n);
  return r.summary!.position;
}

async function exportRpc(credential: string, format: ExportFormat): Promise<string> {
  let text = "";
  for await (const r of query(grpc()).exportEvents({ format, filter: { ids: ["r-1"] } }, { headers: auth(credential) })) {
    text += Buffer.from(r.chunk).toString();
  }
  return text;
}

async function exportHttp(credential: string, format: "ndjson" | "csv"): Promise<string> {
  const res = await fetch(`${svc.url}/v1/export?format=${format}&id=r-1`, { headers: auth(credential) });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return text;
}

/** The first event the tail sends after `after`, as JSON text. */
async function tailFirst(t: Transport, credential: string, after: bigint | undefined, whenOpen = async () => {}): Promise<string> {
  const ac = new AbortController();
  const stream = query(t).tailEvents(
    { afterPosition: after, filter: { ids: ["r-1", "r-2"] } },
    { headers: auth(credential), signal: ac.signal },
  );
  const it = stream[Symbol.asyncIterator]();
  try {
    // The tail starts with a heartbeat at its position once it has caught up: the stream is open.
    for (;;) {
      const item = await it.next();
      if (item.done) throw new Error("tail ended");
      if (item.value.item.case === "heartbeat") {
        await whenOpen();
        whenOpen = async () => {};
        continue;
      }
      if (item.value.item.case === "event") return toJsonString(StoredEventSchema, item.value.item.value);
    }
  } finally {
    ac.abort();
    await it.return?.().catch(() => {});
  }
}

/** What each read path answers `credential` for event r-1, as text. */
const READS: Record<string, (credential: string) => Promise<string>> = {
  GetEvent: async (c) => toJsonString(StoredEventSchema, (await query(grpc()).getEvent({ id: "r-1" }, { headers: auth(c) })).event!),
  SearchEvents: async (c) => {
    const page = await query(grpc()).searchEvents({ filter: { ids: ["r-1"] } }, { headers: auth(c) });
    expect(page.events).toHaveLength(1);
    return toJsonString(StoredEventSchema, page.events[0]!);
  },
  "ExportEvents NDJSON": (c) => exportRpc(c, ExportFormat.NDJSON),
  "ExportEvents CSV": (c) => exportRpc(c, ExportFormat.CSV),
  "GET /v1/export NDJSON": (c) => exportHttp(c, "ndjson"),
  "GET /v1/export CSV": (c) => exportHttp(c, "csv"),
  "TailEvents catch-up (gRPC)": (c) => tailFirst(grpc(), c, position - 1n),
  "TailEvents catch-up (Connect JSON)": (c) => tailFirst(connectJson(), c, position - 1n),
};
/** The paths a User may not call at all (docs/ACCESS.md): they get no event, so no clear text either. */
const REFUSED_TO_USERS = new Set(["TailEvents catch-up (gRPC)", "TailEvents catch-up (Connect JSON)"]);

describe("encryption at rest on every read path", () => {
  it("keeps the raw PostgreSQL row and the raw Elasticsearch document free of the clear text", async () => {
    const row = await db.query("SELECT row_to_json(e)::text AS row FROM events e WHERE tenant_id = $1 AND id = 'r-1'", [tenant.tenantId]);
    const es = inject("elasticsearchUrl");
    const r = await fetch(`${es}/${prefix}-*/_search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: { bool: { filter: [{ term: { tenant_id: tenant.tenantId } }, { term: { id: "r-1" } }] } } }),
    });
    const hits = ((await r.json()) as { hits: { hits: { _source: unknown }[] } }).hits.hits;
    expect(hits).toHaveLength(1);
    for (const raw of [row.rows[0].row as string, JSON.stringify(hits[0]!._source)]) {
      expect(raw).toContain("$encrypted");
      expect(raw).not.toContain(CLEAR);
    }
  });

  for (const [path, read] of Object.entries(READS)) {
    for (const who of ALLOWED) {
      it(`${path}: ${who} gets the clear text`, async () => {
        const text = await read(callers[who]);
        expect(text).toContain("r-1");
        expect(text).not.toContain("$encrypted");
        if (path.endsWith("CSV")) {
          // The changes.before and changes.after cells hold the decrypted JSON (quotes doubled).
          expect(text).toContain(`"{""salary"":""${CLEAR}""}"`);
          expect(text).toContain(`"{""salary"":""${CLEAR}-new""}"`);
        } else {
          expect(text).toContain(`"before":{"salary":"${CLEAR}"}`);
          expect(text).toContain(`"after":{"salary":"${CLEAR}-new"}`);
        }
      });
    }
    if (REFUSED_TO_USERS.has(path)) {
      it(`${path}: a User's token is refused`, async () => {
        const err = await read(callers.user).then(
          (text) => text,
          (e: unknown) => ConnectError.from(e),
        );
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.PermissionDenied);
      });
      continue;
    }
    it(`${path}: a User's token gets the envelope, no clear text`, async () => {
      const text = await read(callers.user);
      expect(text).toContain("r-1");
      expect(text).toContain("$encrypted");
      expect(text).not.toContain(CLEAR);
    });
  }

  it("live TailEvents: every allowed subscriber of the same event gets the clear text", async () => {
    // r-2 is committed once both tails are open, so the replica's feed hands them the same record.
    let opened = 0;
    let appended: Promise<bigint> | null = null;
    const whenOpen = async () => {
      opened++;
      if (opened === ALLOWED.length) appended = append("r-2");
    };
    const texts = await Promise.all(ALLOWED.map((who) => tailFirst(grpc(), callers[who], undefined, whenOpen)));
    await appended;
    for (const text of texts) {
      expect(text).toContain("r-2");
      expect(text).not.toContain("$encrypted");
      expect(text).toContain(`"before":{"salary":"${CLEAR}"}`);
    }
    const raw = await db.query("SELECT changes::text AS c FROM events WHERE tenant_id = $1 AND id = 'r-2'", [tenant.tenantId]);
    expect(raw.rows[0].c).toContain("$encrypted");
    expect(raw.rows[0].c).not.toContain(CLEAR);
  });

  it("keeps an export with a signed manifest as stored, for every caller: its verifier recomputes each hash over the envelope", async () => {
    const res = await fetch(`${svc.url}/v1/export?format=ndjson&manifest=true&id=r-1`, { headers: auth(tenant.query) });
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(res.status, bytes.toString()).toBe(200);
    expect(bytes.toString()).toContain("$encrypted");
    expect(bytes.toString()).not.toContain(CLEAR);
    const { entries } = readNdjsonExport(bytes);
    expect(entries).toHaveLength(1);
    const entry = entries[0]!;
    if (!("record" in entry)) throw new Error(`unreadable line: ${entry.unreadable}`);
    const r = entry.record;
    expect(chainHash(r.prevHash, { ...r, contentHash: contentHash(r) })).toBe(r.hash);
  });
});
