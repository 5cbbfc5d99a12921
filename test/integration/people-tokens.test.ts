// People through JWT / OIDC (docs/ACCESS.md): tokens signed with a shared
// HS256 secret or by keys published at a JWKS endpoint of our own on
// loopback, mapped to a role and tenants; and a User's reads held to their
// own events by the handlers, by PostgreSQL row-level security and by the
// Elasticsearch query, each on its own.
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService, Scope } from "../../gen/auditlog/v1/admin_pb.js";
import { ExportFormat, QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import type { Condition } from "../../src/domain/event-query.ts";
import { PostgresSearchBackend } from "../../src/search/postgres/backend.ts";
import { withTenantRead } from "../../src/store/tenant-scope.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { JwksServer, refusedTokens, signWith } from "../support/jwks-server.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const SECRET = randomBytes(32).toString("hex");
const HS_KEY = new TextEncoder().encode(SECRET);

type Ctx = { svc: TestService; jwks: JwksServer; rsKid: string; esKid: string; acme: TenantKeys; globex: TenantKeys };

/** acme: alice 3 events, bob 2; globex: alice 1. */
const ACME_EVENTS = [
  ["a1", "alice"],
  ["a2", "alice"],
  ["b1", "bob"],
  ["a3", "alice"],
  ["b2", "bob"],
] as const;

/**
 * The events this test wrote. Reads may also be recorded in the tenant's own
 * log (the access audit), so counts look at these ids; "only alice" is
 * checked on unfiltered reads too.
 */
const TEST_IDS = ["a1", "a2", "a3", "b1", "b2", "g1"];
const OURS = { ids: TEST_IDS };
const IDS_ONLY = { kind: "terms", field: "id", values: TEST_IDS } as const satisfies Condition;
const onlyAlice = (actors: (string | undefined)[]) => {
  expect(actors.length).toBeGreaterThan(0);
  expect(new Set(actors)).toEqual(new Set(["alice"]));
};

async function setup(extraEnv: Record<string, string>): Promise<Ctx> {
  const jwks = await new JwksServer().start();
  const rsKid = await jwks.addKey("RS256");
  const esKid = await jwks.addKey("ES256");
  const svc = await startTestService({
    AUDITLOG_JWT_JWKS_URL: jwks.url,
    AUDITLOG_JWT_HS256_SECRET: SECRET,
    AUDITLOG_JWT_ISSUER: jwks.issuer,
    AUDITLOG_JWT_AUDIENCE: jwks.audience,
    AUDITLOG_JWT_CLOCK_SKEW_S: "5",
    AUDITLOG_JWT_JWKS_COOLDOWN_MS: "0",
    AUDITLOG_JWT_ALGORITHMS: "HS256,RS256,ES256",
    ...extraEnv,
  });
  const acme = await createTenantWithKeys(svc.url, "acme");
  const globex = await createTenantWithKeys(svc.url, "globex");
  const append = async (keys: TenantKeys, events: (readonly [string, string])[]) => {
    const r = await connectCall(
      svc.url,
      "auditlog.v1.IngestService/Append",
      {
        events: events.map(([id, actor], i) => {
          const e = toConnectJson(makeEvent(i, id));
          return { ...e, id, actor: { ...(e.actor as object), id: actor } };
        }),
      },
      keys.ingest,
    );
    if (r.status !== 200) throw new Error(JSON.stringify(r.body));
  };
  await append(acme, [...ACME_EVENTS]);
  await append(globex, [["g1", "alice"]]);
  // Admin calls may be recorded in the tenant's log too: wait for everything committed so far.
  for (const keys of [acme, globex]) {
    const status = await connectCall<{ committedPosition: string }>(svc.url, "auditlog.v1.QueryService/GetIndexStatus", {}, keys.query);
    const indexed = await svc.backend.waitForPosition(keys.tenantId, BigInt(status.body.committedPosition), 20_000);
    if (!indexed) throw new Error(`${keys.tenantId} not indexed in time`);
  }
  return { svc, jwks, rsKid, esKid, acme, globex };
}

function clients(url: string) {
  const t = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
  return { query: createClient(QueryService, t), admin: createClient(AdminService, t) };
}

const as = (token: string, tenant?: string) => ({
  headers: { authorization: `Bearer ${token}`, ...(tenant ? { "x-auditlog-tenant": tenant } : {}) },
});

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

const hs = (claims: Record<string, unknown>, opts: { expiresIn?: number; notBefore?: number; issuer?: string; audience?: string } = {}) =>
  signWith(HS_KEY, "HS256", undefined, claims, { issuer: "https://idp.test", audience: "auditlog-test", ...opts });

const actorsOf = (events: { event?: { actor?: { id: string } } }[]) => events.map((e) => e.event?.actor?.id);

/** What a User sees, over every read a User may make. */
function userSeesOnlyOwnActivity(get: () => Ctx) {
  it("SearchEvents, GetEvent, ExportEvents, GET /v1/export and GetStats show a User only their own events", async () => {
    const { svc, jwks, rsKid } = get();
    const alice = await jwks.sign(rsKid, { sub: "alice", role: "user", tenants: ["acme"] });
    const { query } = clients(svc.url);

    onlyAlice(actorsOf((await query.searchEvents({}, as(alice))).events));
    const page = await query.searchEvents({ filter: OURS, includeTotal: true }, as(alice));
    expect(actorsOf(page.events).sort()).toEqual(["alice", "alice", "alice"]);
    expect(page.total).toBe(3n);
    // Asking for bob explicitly: still nothing of his.
    const asked = await query.searchEvents({ filter: { actorIds: ["bob"] } }, as(alice));
    expect(asked.events).toEqual([]);
    const q = await query.searchEvents({ filter: { query: "actor.id:bob" } }, as(alice));
    expect(q.events).toEqual([]);

    expect((await query.getEvent({ id: "a1" }, as(alice))).event?.event?.actor?.id).toBe("alice");
    expect(await codeOf(query.getEvent({ id: "b1" }, as(alice)))).toBe(Code.NotFound);

    let text = "";
    for await (const r of query.exportEvents({ format: ExportFormat.NDJSON, filter: OURS }, as(alice)))
      text += Buffer.from(r.chunk).toString();
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: { actor: { id: string } } });
    expect(lines.map((l) => l.event.actor.id)).toEqual(["alice", "alice", "alice"]);

    const all = await fetch(`${svc.url}/v1/export?format=ndjson`, as(alice));
    onlyAlice(
      (await all.text())
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { event: { actor: { id: string } } }).event.actor.id),
    );
    const res = await fetch(`${svc.url}/v1/export?format=ndjson&${TEST_IDS.map((i) => `id=${i}`).join("&")}`, as(alice));
    expect(res.status).toBe(200);
    const httpLines = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: { actor: { id: string } } });
    expect(httpLines.map((l) => l.event.actor.id)).toEqual(["alice", "alice", "alice"]);

    const unfiltered = await query.getStats({}, as(alice));
    expect(unfiltered.top.find((t) => t.field === "actor.id")!.values.map((v) => v.value)).toEqual(["alice"]);
    const stats = await query.getStats({ filter: OURS }, as(alice));
    expect(stats.total).toBe(3n);

    // An Auditor of the same tenant sees everyone.
    const auditor = await jwks.sign(rsKid, { sub: "carol", role: "auditor", tenants: ["acme"] });
    expect((await query.searchEvents({ filter: OURS, includeTotal: true }, as(auditor))).total).toBe(5n);
  });

  it("with the application's actor condition removed, the backend still holds a User to their events", async () => {
    const { svc } = get();
    // The query a handler would send, minus its actor.id condition: only the backend's own guard is left.
    // (Only the test's own ids, not an actor condition: reads may be recorded in the log too.)
    const page = await svc.backend.search("acme", { conditions: [IDS_ONLY], actorId: "bob" }, "asc", null, 100, true);
    expect(page.records.map((r) => r.actor.id)).toEqual(["bob", "bob"]);
    expect(page.total).toBe(2n);
    const stats = await svc.backend.stats("acme", { conditions: [IDS_ONLY], actorId: "bob" }, "day", 10);
    expect(stats.total).toBe(2n);
    const exported: string[] = [];
    for await (const batch of svc.backend.export(
      "acme",
      { conditions: [IDS_ONLY], actorId: "bob" },
      "asc",
      null,
      new AbortController().signal,
    )) {
      exported.push(...batch.map((r) => r.actor.id));
    }
    expect(exported).toEqual(["bob", "bob"]);
  });
}

describe("people's tokens (PostgreSQL search)", () => {
  let ctx: Ctx;
  beforeAll(async () => {
    ctx = await setup({});
  }, 60_000);
  afterAll(async () => {
    await ctx?.svc.stop();
    await ctx?.jwks.close();
  });

  it("accepts RS256, ES256 and HS256 tokens for each role, with the role's rights", async () => {
    const { svc, jwks, rsKid, esKid } = ctx;
    const { query, admin } = clients(svc.url);
    const signers = {
      RS256: (c: Record<string, unknown>) => jwks.sign(rsKid, c),
      ES256: (c: Record<string, unknown>) => jwks.sign(esKid, c),
      HS256: (c: Record<string, unknown>) => hs(c),
    };
    for (const [alg, sign] of Object.entries(signers)) {
      const adminT = await sign({ sub: "root", role: "admin", tenants: ["acme"] });
      const auditorT = await sign({ sub: "carol", role: "auditor", tenant_id: "acme" });
      const userT = await sign({ sub: "alice", role: "user", tenants: "acme" });
      // Admin: keys of its tenant, and reads.
      expect(await codeOf(admin.listApiKeys({}, as(adminT))), alg).toBe("ok");
      expect((await query.searchEvents({ filter: OURS }, as(adminT))).events.length, alg).toBe(5);
      // Auditor: every read, verification and index status; no keys.
      expect((await query.searchEvents({ filter: OURS }, as(auditorT))).events.length, alg).toBe(5);
      expect((await query.verifyChain({}, as(auditorT))).ok, alg).toBe(true);
      expect(await codeOf(query.getIndexStatus({}, as(auditorT))), alg).toBe("ok");
      expect(await codeOf(admin.createApiKey({ name: "x", scopes: [Scope.QUERY] }, as(auditorT))), alg).toBe(Code.PermissionDenied);
      expect(await codeOf(admin.listApiKeys({}, as(auditorT))), alg).toBe(Code.PermissionDenied);
      // User: own events; no verification, index status or admin.
      expect(actorsOf((await query.searchEvents({ filter: OURS }, as(userT))).events), alg).toEqual(["alice", "alice", "alice"]);
      onlyAlice(actorsOf((await query.searchEvents({}, as(userT))).events));
      expect(await codeOf(query.verifyChain({}, as(userT))), alg).toBe(Code.PermissionDenied);
      expect(await codeOf(query.getIndexStatus({}, as(userT))), alg).toBe(Code.PermissionDenied);
      expect(await codeOf(admin.listApiKeys({}, as(userT))), alg).toBe(Code.PermissionDenied);
    }
  });

  it("an Admin token creates keys for its tenant only; an Auditor cannot create keys", async () => {
    const { svc, jwks, rsKid } = ctx;
    const { admin } = clients(svc.url);
    const adminT = await jwks.sign(rsKid, { sub: "root", role: "admin", tenants: ["acme"] });
    const made = await admin.createApiKey({ name: "from-token", scopes: [Scope.QUERY] }, as(adminT));
    expect(made.key?.tenantId).toBe("acme");
    expect(await codeOf(admin.createApiKey({ tenantId: "globex", name: "x", scopes: [Scope.QUERY] }, as(adminT)))).toBe(
      Code.PermissionDenied,
    );
    // Another tenant's key id: NOT_FOUND, as for API keys.
    const globexKeys = await admin.listApiKeys(
      { tenantId: "globex" },
      as(await jwks.sign(rsKid, { sub: "g", role: "admin", tenants: ["globex"] })),
    );
    expect(await codeOf(admin.revokeApiKey({ keyId: globexKeys.keys[0]!.id }, as(adminT)))).toBe(Code.NotFound);
    // Tenants themselves stay the operator's.
    expect(await codeOf(admin.createTenant({ id: "evil", name: "x" }, as(adminT)))).toBe(Code.PermissionDenied);
    expect(await codeOf(admin.listTenants({}, as(adminT)))).toBe(Code.PermissionDenied);
    const auditorT = await jwks.sign(rsKid, { sub: "carol", role: "auditor", tenants: ["acme"] });
    expect(await codeOf(admin.createApiKey({ name: "x", scopes: [Scope.ADMIN] }, as(auditorT)))).toBe(Code.PermissionDenied);
  });

  it("refuses bad tokens with UNAUTHENTICATED: wrong signature, alg none, expired, not yet valid, wrong issuer or audience", async () => {
    const { svc, jwks, rsKid } = ctx;
    const { query } = clients(svc.url);
    const claims = { sub: "carol", role: "auditor", tenants: ["acme"] };
    const cases = await refusedTokens(jwks, rsKid, HS_KEY, claims, { role: "admin", tenants: ["globex"] });
    const good = await jwks.sign(rsKid, claims);
    for (const [name, token] of Object.entries(cases)) {
      expect(await codeOf(query.searchEvents({}, as(token))), name).toBe(Code.Unauthenticated);
      const res = await fetch(`${svc.url}/v1/export`, as(token));
      expect(res.status, name).toBe(401);
    }
    // Within the clock skew (5 s): still valid.
    expect(await codeOf(query.searchEvents({}, as(await jwks.sign(rsKid, claims, { expiresIn: -2 }))))).toBe("ok");
    expect(await codeOf(query.searchEvents({}, as(good)))).toBe("ok");
  });

  it("an unknown key id makes the service fetch the JWKS again: a rotated key works at once", async () => {
    const { svc, jwks } = ctx;
    const { query } = clients(svc.url);
    const claims = { sub: "carol", role: "auditor", tenants: ["acme"] };
    const next = await jwks.addKey("ES256", false);
    const token = await jwks.sign(next, claims);
    // Not yet published: refused.
    expect(await codeOf(query.searchEvents({}, as(token)))).toBe(Code.Unauthenticated);
    const before = jwks.fetches;
    jwks.publish(next);
    expect(await codeOf(query.searchEvents({}, as(token)))).toBe("ok");
    expect(jwks.fetches).toBeGreaterThan(before);
  });

  it("a token's tenants: the header chooses among them, and a tenant it does not grant is PERMISSION_DENIED", async () => {
    const { svc, jwks, rsKid, acme } = ctx;
    const { query, admin } = clients(svc.url);
    const acmeOnly = await jwks.sign(rsKid, { sub: "carol", role: "auditor", tenants: ["acme"] });
    expect(await codeOf(query.searchEvents({}, as(acmeOnly, "globex")))).toBe(Code.PermissionDenied);
    expect(await codeOf(query.getEvent({ id: "g1" }, as(acmeOnly, "globex")))).toBe(Code.PermissionDenied);
    expect((await fetch(`${svc.url}/v1/export`, as(acmeOnly, "globex"))).status).toBe(403);
    // Without the header, its only tenant; globex's event id is not found there.
    expect(await codeOf(query.getEvent({ id: "g1" }, as(acmeOnly)))).toBe(Code.NotFound);

    const both = await jwks.sign(rsKid, { sub: "carol", role: "auditor", tenants: ["acme", "globex"] });
    expect(await codeOf(query.searchEvents({}, as(both)))).toBe(Code.InvalidArgument);
    expect((await query.searchEvents({ filter: OURS }, as(both, "globex"))).events.map((e) => e.event?.id)).toEqual(["g1"]);
    expect((await query.searchEvents({ filter: OURS }, as(both, "acme"))).events).toHaveLength(5);

    // An admin token granting acme cannot manage globex, by header or by field.
    const acmeAdmin = await jwks.sign(rsKid, { sub: "root", role: "admin", tenants: ["acme"] });
    expect(await codeOf(admin.listApiKeys({}, as(acmeAdmin, "globex")))).toBe(Code.PermissionDenied);
    expect(await codeOf(admin.listApiKeys({ tenantId: "globex" }, as(acmeAdmin)))).toBe(Code.PermissionDenied);

    // API keys keep their tenant: naming another is refused, naming their own is fine.
    expect(await codeOf(query.searchEvents({}, as(acme.query, "globex")))).toBe(Code.PermissionDenied);
    expect(await codeOf(query.searchEvents({}, as(acme.query, "acme")))).toBe("ok");
  });

  it("a token without a known role or without tenants is PERMISSION_DENIED; no role may ingest", async () => {
    const { svc, jwks, rsKid } = ctx;
    const { query } = clients(svc.url);
    for (const claims of [
      { sub: "x", role: "superuser", tenants: ["acme"] },
      { sub: "x", tenants: ["acme"] },
      { sub: "x", role: "auditor" },
    ]) {
      expect(await codeOf(query.searchEvents({}, as(await jwks.sign(rsKid, claims)))), JSON.stringify(claims)).toBe(Code.PermissionDenied);
    }
    const adminT = await jwks.sign(rsKid, { sub: "root", role: "admin", tenants: ["acme"] });
    const r = await connectCall(svc.url, "auditlog.v1.IngestService/Append", { events: [toConnectJson(makeEvent(1, "tok"))] }, adminT);
    expect(r.body.code).toBe("permission_denied");
  });

  userSeesOnlyOwnActivity(() => ctx);

  it("row-level security alone: a read with the actor set sees only that actor's rows, whatever the SQL", async () => {
    const { svc } = ctx;
    const rows = await withTenantRead(
      svc.readPool,
      "acme",
      async (db) => (await db.query<{ actor_id: string }>("SELECT DISTINCT actor_id FROM events")).rows.map((r) => r.actor_id),
      { actorId: "alice" },
    );
    expect(rows).toEqual(["alice"]);
    const ids = await withTenantRead(
      svc.readPool,
      "acme",
      async (db) => (await db.query<{ id: string }>("SELECT id FROM events WHERE actor_id = 'bob'")).rows,
      { actorId: "alice" },
    );
    expect(ids).toEqual([]);
    // Without an actor (Auditor, API keys): the whole tenant.
    const all = await withTenantRead(
      svc.readPool,
      "acme",
      async (db) => (await db.query("SELECT 1 FROM events WHERE id = ANY($1)", [TEST_IDS])).rowCount,
    );
    expect(all).toBe(5);
    // The PostgreSQL backend given a query without any condition: the policy alone restricts it.
    const pg = new PostgresSearchBackend(svc.readPool);
    const anyEvent = await pg.search("acme", { conditions: [], actorId: "alice" }, "asc", null, 100, true);
    onlyAlice(anyEvent.records.map((r) => r.actor.id));
    const page = await pg.search("acme", { conditions: [IDS_ONLY], actorId: "alice" }, "asc", null, 100, true);
    expect(page.records.map((r) => r.id)).toEqual(["a1", "a2", "a3"]);
    expect(page.total).toBe(3n);
  });
});

describe("a User's own activity on Elasticsearch", () => {
  let ctx: Ctx;
  const prefix = `test-people-${randomBytes(4).toString("hex")}`;
  beforeAll(async () => {
    ctx = await setup({
      ELASTICSEARCH_URL: inject("elasticsearchUrl"),
      AUDITLOG_ES_INDEX_PREFIX: prefix,
      AUDITLOG_RECONCILE_INTERVAL_MS: "0",
    });
  }, 120_000);
  afterAll(async () => {
    await ctx?.svc.stop();
    await ctx?.jwks.close();
    const es = inject("elasticsearchUrl");
    await fetch(`${es}/${prefix}-*`, { method: "DELETE" });
    await fetch(`${es}/_index_template/${prefix}`, { method: "DELETE" });
  });

  it("serves search from Elasticsearch", () => {
    expect(ctx.svc.backend.name).toBe("elasticsearch");
  });

  userSeesOnlyOwnActivity(() => ctx);
});
