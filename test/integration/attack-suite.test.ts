// The cross-tenant attack suite (issue 12, item 2; docs/ACCESS.md, "The
// attack suite"): an intruder with every credential a tenant can hold (API
// keys of each scope, Admin / Auditor / User tokens) tries to reach the
// victim tenant's events, keys and state by every door the service has.
// Each attempt is one `it`, asserting the exact code and that nothing of the
// victim (its secret marker, its event ids' contents) is in the answer.
// Reads are attacked on both search backends; the rest does not depend on
// the backend and runs once, on PostgreSQL. The last block removes the
// application's tenant condition on purpose: row-level security alone.
import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import amqp, { type ChannelModel, type ConfirmChannel } from "amqplib";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AdminService, Scope } from "../../gen/auditlog/v1/admin_pb.js";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { ExportFormat, QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { tenantTables } from "../../src/store/tenant-store.ts";
import { withTenantRead } from "../../src/store/tenant-scope.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { JwksServer, refusedTokens } from "../support/jwks-server.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const VICTIM = "victim";
const INTRUDER = "intruder";
/** In every victim event (message and metadata): must never appear in an answer to the intruder. */
const SECRET = `VICTIMSECRET${randomBytes(6).toString("hex")}`;
/** In the events the intruder plants claiming the victim: must never be found in the victim's log. */
const PLANTED = `planted${randomBytes(6).toString("hex")}`;
const HS_SECRET = new TextEncoder().encode(randomBytes(32).toString("hex"));
/** Ids only the victim has; "shared-*" ids exist in both tenants with different contents. */
const VICTIM_ONLY = ["v-1", "v-2", "v-3"];
/** RabbitMQ of the machine, as test/integration/amqp-ingest.test.ts uses it. */
const AMQP_URL = process.env.AUDITLOG_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const QUEUE_RUN = randomBytes(4).toString("hex");
/** A queue bound to the victim, and one that takes the tenant from each message's key (PostgreSQL run only). */
const VICTIM_QUEUE = `auditlog-attack-${QUEUE_RUN}-victim`;
const KEYED_QUEUE = `auditlog-attack-${QUEUE_RUN}-keyed`;

type Ctx = { svc: TestService; jwks: JwksServer; kid: string; victim: TenantKeys; intruder: TenantKeys };

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));

/** An error's or refusal's text says nothing of the victim's events. */
function noLeak(text: string): void {
  expect(text).not.toContain(SECRET);
}

/** The call fails with `code`, and its error says nothing of the victim. */
async function refused(p: Promise<unknown> | AsyncIterable<unknown>, code: Code): Promise<ConnectError> {
  try {
    if (Symbol.asyncIterator in p) for await (const _ of p);
    else await p;
  } catch (e) {
    const err = ConnectError.from(e);
    expect(Code[err.code], err.message).toBe(Code[code]);
    noLeak(json({ message: err.rawMessage, details: err.details, metadata: [...err.metadata] }));
    return err;
  }
  throw new Error(`expected ${Code[code]}, the call succeeded`);
}

type Answered = { tenantId?: string; tenant_id?: string; id?: string; message?: string; metadata?: unknown; event?: Answered };

/**
 * Events answered to the intruder (StoredEvents, NDJSON lines or rows): its
 * own only, none of the victim's. The intruder's log also holds the access
 * audit of its own calls, whose recorded queries may quote what it asked
 * for (a victim's id, the secret as a search text): that is its own input,
 * not a leak, so the check looks at what each event is, not at every byte.
 */
function onlyIntruders(events: readonly Answered[]): void {
  for (const e of events) {
    expect(e.tenantId ?? e.tenant_id).toBe(INTRUDER);
    const inner = e.event ?? e;
    expect(VICTIM_ONLY).not.toContain(inner.id);
    expect(inner.message ?? "").not.toContain(SECRET);
    expect((inner.metadata as { marker?: unknown } | undefined)?.marker).not.toBe(SECRET);
  }
}

const as = (secret: string, tenant?: string) => ({
  headers: { authorization: `Bearer ${secret}`, ...(tenant ? { "x-auditlog-tenant": tenant } : {}) },
});

function clients(url: string) {
  const t = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
  return { query: createClient(QueryService, t), admin: createClient(AdminService, t), ingest: createClient(IngestService, t) };
}

async function setup(extraEnv: Record<string, string>): Promise<Ctx> {
  const jwks = await new JwksServer().start();
  const kid = await jwks.addKey("RS256");
  const svc = await startTestService({
    AUDITLOG_JWT_JWKS_URL: jwks.url,
    AUDITLOG_JWT_HS256_SECRET: Buffer.from(HS_SECRET).toString(),
    AUDITLOG_JWT_ISSUER: jwks.issuer,
    AUDITLOG_JWT_AUDIENCE: jwks.audience,
    AUDITLOG_JWT_ALGORITHMS: "HS256,RS256,ES256",
    // The default key cache: "refused at once" must hold with it.
    ...extraEnv,
  });
  const victim = await createTenantWithKeys(svc.url, VICTIM);
  const intruder = await createTenantWithKeys(svc.url, INTRUDER);
  const event = (id: string, i: number, secret: boolean) => {
    const e = toConnectJson(makeEvent(i, "x"));
    return {
      ...e,
      id,
      message: secret ? `${SECRET} ${id}` : `intruder ${id}`,
      // The intruder's own events claim the victim in metadata: filtering on it must find only them.
      metadata: secret ? { marker: SECRET, tenant_id: VICTIM } : { tenant_id: VICTIM, _routing: VICTIM },
    };
  };
  const victimEvents = [...VICTIM_ONLY, "shared-1", "shared-2"].map((id, i) => event(id, i, true));
  const intruderEvents = ["i-1", "i-2", "shared-1", "shared-2"].map((id, i) => event(id, i, false));
  for (const [keys, events] of [
    [victim, victimEvents],
    [intruder, intruderEvents],
  ] as const) {
    const r = await fetch(`${svc.url}/auditlog.v1.IngestService/Append`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.ingest}` },
      body: JSON.stringify({ events }),
    });
    expect(r.status, await r.clone().text()).toBe(200);
  }
  await waitIndexed({ svc, jwks, kid, victim, intruder });
  return { svc, jwks, kid, victim, intruder };
}

/** Everything committed so far is searchable (Elasticsearch indexes after the commit). */
async function waitIndexed(ctx: Ctx): Promise<void> {
  const { query } = clients(ctx.svc.url);
  for (const keys of [ctx.victim, ctx.intruder]) {
    const status = await query.getIndexStatus({}, as(keys.query));
    if (!(await ctx.svc.backend.waitForPosition(keys.tenantId, status.committedPosition, 30_000))) {
      throw new Error(`${keys.tenantId} not indexed in time`);
    }
  }
}

async function exportText(stream: AsyncIterable<{ chunk: Uint8Array }>): Promise<string> {
  let text = "";
  for await (const r of stream) text += Buffer.from(r.chunk).toString();
  return text;
}

const ndjson = (text: string): Answered[] =>
  text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Answered);

/** Reads attacked on each search backend: ids, page tokens, query strings and filters, exports, stats. */
function readAttacks(get: () => Ctx) {
  const q = () => clients(get().svc.url).query;
  const key = () => get().intruder.query;

  describe("ids of the victim's events", () => {
    it("GetEvent with a victim's event id: NOT_FOUND", async () => {
      await refused(q().getEvent({ id: "v-1" }, as(key())), Code.NotFound);
    });

    it("GetEvent with an id both tenants use: the intruder's own event", async () => {
      const got = await q().getEvent({ id: "shared-1" }, as(key()));
      expect(got.event?.tenantId).toBe(INTRUDER);
      onlyIntruders([got.event as Answered]);
    });

    it("SearchEvents filter.ids naming the victim's events: no events", async () => {
      const page = await q().searchEvents({ filter: { ids: VICTIM_ONLY }, includeTotal: true }, as(key()));
      expect(page.events).toEqual([]);
      expect(page.total).toBe(0n);
    });

    it("a query string `id:` naming a victim's event: no events", async () => {
      const page = await q().searchEvents({ filter: { query: "id:v-1 id:v-2" } }, as(key()));
      expect(page.events).toEqual([]);
    });
  });

  describe("page tokens", () => {
    /** A next-page token of `secret`'s tenant for `filter`. */
    const tokenOf = async (secret: string, filter: { query?: string } = {}) => {
      const page = await q().searchEvents({ filter, pageSize: 1 }, as(secret));
      expect(page.nextPageToken).not.toBe("");
      return page.nextPageToken;
    };

    it("a page token taken from the victim: INVALID_ARGUMENT", async () => {
      const stolen = await tokenOf(get().victim.query);
      await refused(q().searchEvents({ pageSize: 1, pageToken: stolen }, as(key())), Code.InvalidArgument);
    });

    it("a page token with its query fingerprint edited (one byte flipped): INVALID_ARGUMENT", async () => {
      const parts = Buffer.from(await tokenOf(key()), "base64url")
        .toString()
        .split("|");
      const fp = parts[1]!;
      parts[1] = (fp[0] === "A" ? "B" : "A") + fp.slice(1);
      const edited = Buffer.from(parts.join("|")).toString("base64url");
      await refused(q().searchEvents({ pageSize: 1, pageToken: edited }, as(key())), Code.InvalidArgument);
    });

    it("a page token with any single byte flipped: refused or the intruder's own page, never the victim's", async () => {
      const token = await tokenOf(key());
      const raw = Buffer.from(token, "base64url");
      for (let i = 0; i < raw.length; i++) {
        const flipped = Buffer.from(raw);
        flipped[i] = flipped[i]! ^ 0x01;
        try {
          onlyIntruders((await q().searchEvents({ pageSize: 1, pageToken: flipped.toString("base64url") }, as(key()))).events);
        } catch (e) {
          expect(Code[ConnectError.from(e).code], `byte ${i}`).toBe(Code[Code.InvalidArgument]);
          noLeak(ConnectError.from(e).rawMessage);
        }
      }
    });

    it("a page token forged with huge numbers: INVALID_ARGUMENT", async () => {
      const [, fp] = Buffer.from(await tokenOf(key()), "base64url")
        .toString()
        .split("|");
      for (const [time, seq] of [
        ["99999999999999999999", "1"],
        ["-99999999999999999999", "1"],
        ["0", "99999999999999999999"],
        ["0", "9223372036854775808"],
        ["0", "0"],
        ["1e30", "1"],
      ]) {
        const forged = Buffer.from(`1|${fp}|${time}|${seq}`).toString("base64url");
        await refused(q().searchEvents({ pageSize: 1, pageToken: forged }, as(key())), Code.InvalidArgument);
      }
    });

    it("a page token of another query (same tenant): INVALID_ARGUMENT", async () => {
      const other = await tokenOf(key(), { query: "actor.type:USER" });
      await refused(q().searchEvents({ pageSize: 1, pageToken: other }, as(key())), Code.InvalidArgument);
    });
  });

  describe("query strings and filters naming other tenants or internal fields", () => {
    for (const text of ["tenant_id:victim", "tenant:victim", "_id:v-1", "_routing:victim", "_index:*", "tenant_id:*"]) {
      it(`query \`${text}\`: INVALID_ARGUMENT (no such field)`, async () => {
        await refused(q().searchEvents({ filter: { query: text } }, as(key())), Code.InvalidArgument);
      });
    }

    it("metadata keys `tenant_id` and `_routing` naming the victim: only the intruder's own events", async () => {
      for (const text of ["metadata.tenant_id:victim", "metadata._routing:victim"]) {
        const page = await q().searchEvents({ filter: { query: text } }, as(key()));
        expect(page.events.length, text).toBe(4);
        onlyIntruders(page.events);
      }
    });

    it("free text carrying Lucene / query_string syntax does not widen: no victim event", async () => {
      for (const text of [SECRET, `tenant_id:${VICTIM} OR *`, "* OR _index:*", `"${SECRET}" OR message:*`]) {
        const page = await q().searchEvents({ filter: { text } }, as(key()));
        onlyIntruders(page.events);
        const quoted = await q().searchEvents({ filter: { query: JSON.stringify(text) } }, as(key()));
        onlyIntruders(quoted.events);
      }
    });
  });

  describe("exports, stats, verification and index status", () => {
    it("ExportEvents (RPC) of the victim's ids: an empty export", async () => {
      const text = await exportText(q().exportEvents({ format: ExportFormat.NDJSON, filter: { ids: VICTIM_ONLY } }, as(key())));
      expect(text.trim()).toBe("");
    });

    it("ExportEvents (RPC) of everything: only the intruder's events", async () => {
      const text = await exportText(q().exportEvents({ format: ExportFormat.NDJSON }, as(key())));
      expect(ndjson(text).length).toBeGreaterThanOrEqual(4);
      onlyIntruders(ndjson(text));
    });

    it("ExportEvents (RPC) with x-auditlog-tenant naming the victim: PERMISSION_DENIED", async () => {
      await refused(q().exportEvents({ format: ExportFormat.NDJSON }, as(key(), VICTIM)), Code.PermissionDenied);
    });

    it("GET /v1/export with the victim's ids, or its tenant in the header: empty, or 403", async () => {
      const { svc } = get();
      const ids = await fetch(`${svc.url}/v1/export?format=ndjson&${VICTIM_ONLY.map((i) => `id=${i}`).join("&")}`, as(key()));
      expect(ids.status).toBe(200);
      expect((await ids.text()).trim()).toBe("");
      const header = await fetch(`${svc.url}/v1/export?format=ndjson`, as(key(), VICTIM));
      expect(header.status).toBe(403);
      noLeak(await header.text());
    });

    it("GET /v1/export with a tenant parameter: 400, and never the victim's events", async () => {
      const { svc } = get();
      for (const p of ["tenant_id=victim", "tenant=victim", "_routing=victim"]) {
        const res = await fetch(`${svc.url}/v1/export?format=ndjson&${p}`, as(key()));
        expect(res.status, p).toBe(400);
        noLeak(await res.text());
      }
      const meta = await fetch(`${svc.url}/v1/export?format=ndjson&metadata.tenant_id=victim`, as(key()));
      expect(meta.status).toBe(200);
      const text = await meta.text();
      expect(ndjson(text)).toHaveLength(4);
      onlyIntruders(ndjson(text));
    });

    it("GetStats of the victim's ids: total 0; with the victim's tenant header: PERMISSION_DENIED", async () => {
      const stats = await q().getStats({ filter: { ids: VICTIM_ONLY } }, as(key()));
      expect(stats.total).toBe(0n);
      noLeak(json(await q().getStats({}, as(key()))));
      await refused(q().getStats({}, as(key(), VICTIM)), Code.PermissionDenied);
    });
  });
}

describe("cross-tenant attacks (PostgreSQL search)", () => {
  let ctx: Ctx;
  beforeAll(async () => {
    ctx = await setup({ AUDITLOG_AMQP_URL: AMQP_URL, AUDITLOG_AMQP_QUEUES: `${VICTIM_QUEUE}=${VICTIM},${KEYED_QUEUE}` });
  }, 60_000);
  afterAll(async () => {
    await ctx?.svc.stop();
    await ctx?.jwks.close();
  });
  const get = () => ctx;
  const c = () => clients(ctx.svc.url);

  readAttacks(get);

  describe("verification, index status, live tail", () => {
    it("VerifyChain covers the intruder's chain only; with the victim's tenant header: PERMISSION_DENIED", async () => {
      // Reads are recorded in the intruder's own log, so its head moves while this runs.
      const before = (await c().query.getIndexStatus({}, as(ctx.intruder.query))).committedPosition;
      const own = await c().query.verifyChain({}, as(ctx.intruder.query));
      const after = (await c().query.getIndexStatus({}, as(ctx.intruder.query))).committedPosition;
      expect(own.ok).toBe(true);
      expect(own.toSequence).toBeGreaterThanOrEqual(before);
      expect(own.toSequence).toBeLessThanOrEqual(after);
      await refused(c().query.verifyChain({}, as(ctx.intruder.query, VICTIM)), Code.PermissionDenied);
    });

    it("VerifyChain beyond the intruder's head (the victim's sequences): nothing of the victim", async () => {
      const r = await c()
        .query.verifyChain({ fromSequence: 1n, toSequence: 1_000_000n }, as(ctx.intruder.query))
        .catch((e) => e);
      noLeak(r instanceof Error ? ConnectError.from(r).rawMessage : json(r));
    });

    it("GetIndexStatus with the victim's tenant header: PERMISSION_DENIED", async () => {
      await refused(c().query.getIndexStatus({}, as(ctx.intruder.query, VICTIM)), Code.PermissionDenied);
    });

    it("TailEvents with the victim's tenant header: PERMISSION_DENIED", async () => {
      await refused(c().query.tailEvents({ afterPosition: 0n }, as(ctx.intruder.query, VICTIM)), Code.PermissionDenied);
    });

    it("TailEvents from position 0: only the intruder's events", async () => {
      const abort = new AbortController();
      const seen: { tenantId: string }[] = [];
      try {
        for await (const r of c().query.tailEvents(
          { afterPosition: 0n, heartbeatSeconds: 1 },
          { ...as(ctx.intruder.query), signal: abort.signal },
        )) {
          if (r.item.case === "event") seen.push(r.item.value);
          else break;
        }
      } finally {
        abort.abort();
      }
      expect(seen.length).toBeGreaterThanOrEqual(4);
      onlyIntruders(seen);
    });
  });

  describe("admin calls by a tenant's admin key", () => {
    it("CreateTenant: PERMISSION_DENIED", async () => {
      await refused(c().admin.createTenant({ id: "evil", name: "x" }, as(ctx.intruder.admin)), Code.PermissionDenied);
    });

    it("CreateApiKey for the victim: PERMISSION_DENIED", async () => {
      await refused(
        c().admin.createApiKey({ tenantId: VICTIM, name: "x", scopes: [Scope.QUERY] }, as(ctx.intruder.admin)),
        Code.PermissionDenied,
      );
    });

    it("ListApiKeys of the victim: PERMISSION_DENIED", async () => {
      await refused(c().admin.listApiKeys({ tenantId: VICTIM }, as(ctx.intruder.admin)), Code.PermissionDenied);
    });

    it("RotateApiKey and RevokeApiKey of the victim's key id: NOT_FOUND, and the victim's key keeps working", async () => {
      const victimKeys = await c().admin.listApiKeys({ tenantId: VICTIM }, as(BOOTSTRAP_KEY));
      const keyId = victimKeys.keys.find((k) => k.name === "SCOPE_QUERY")!.id;
      await refused(c().admin.rotateApiKey({ keyId }, as(ctx.intruder.admin)), Code.NotFound);
      await refused(c().admin.revokeApiKey({ keyId }, as(ctx.intruder.admin)), Code.NotFound);
      expect((await c().query.searchEvents({ pageSize: 1 }, as(ctx.victim.query))).events).toHaveLength(1);
    });

    it("tenant lifecycle calls (ListTenants, UpdateTenant, SuspendTenant) on the victim: PERMISSION_DENIED", async () => {
      await refused(c().admin.listTenants({}, as(ctx.intruder.admin)), Code.PermissionDenied);
      await refused(c().admin.updateTenant({ tenantId: VICTIM, name: "pwned" }, as(ctx.intruder.admin)), Code.PermissionDenied);
      await refused(c().admin.suspendTenant({ tenantId: VICTIM }, as(ctx.intruder.admin)), Code.PermissionDenied);
    });

    it("an Admin token of the intruder naming the victim by field or header: PERMISSION_DENIED", async () => {
      const adminT = await ctx.jwks.sign(ctx.kid, { sub: "mallory", role: "admin", tenants: [INTRUDER] });
      await refused(c().admin.listApiKeys({ tenantId: VICTIM }, as(adminT)), Code.PermissionDenied);
      await refused(c().admin.createApiKey({ name: "x", scopes: [Scope.QUERY] }, as(adminT, VICTIM)), Code.PermissionDenied);
    });
  });

  describe("credentials", () => {
    it("the operator key on QueryService: PERMISSION_DENIED", async () => {
      await refused(c().query.searchEvents({}, as(BOOTSTRAP_KEY)), Code.PermissionDenied);
      await refused(c().query.getEvent({ id: "v-1" }, as(BOOTSTRAP_KEY, VICTIM)), Code.PermissionDenied);
    });

    it("the operator key on IngestService: PERMISSION_DENIED", async () => {
      await refused(c().ingest.append({ events: [] }, as(BOOTSTRAP_KEY)), Code.PermissionDenied);
    });

    describe("tokens refused with UNAUTHENTICATED (shared list: test/support/jwks-server.ts refusedTokens)", () => {
      const names = [
        "wrong signature",
        "edited claims",
        "alg none",
        "HS256 signed with another secret",
        "expired",
        "not yet valid",
        "wrong issuer",
        "wrong audience",
        "no subject",
        "HS384 (not configured)",
      ];
      let tokens: Record<string, string>;
      beforeAll(async () => {
        const claims = { sub: "mallory", role: "auditor", tenants: [INTRUDER] };
        tokens = await refusedTokens(ctx.jwks, ctx.kid, HS_SECRET, claims, { role: "admin", tenants: [VICTIM] });
        expect(Object.keys(tokens).sort()).toEqual([...names].sort());
      });
      for (const name of names) {
        it(`a token with ${name}: UNAUTHENTICATED, on the RPCs and GET /v1/export`, async () => {
          await refused(c().query.searchEvents({}, as(tokens[name]!, VICTIM)), Code.Unauthenticated);
          const res = await fetch(`${ctx.svc.url}/v1/export`, as(tokens[name]!, VICTIM));
          expect(res.status).toBe(401);
          noLeak(await res.text());
        });
      }
    });

    it("a multi-tenant token naming a tenant it lacks: PERMISSION_DENIED", async () => {
      const t = await ctx.jwks.sign(ctx.kid, { sub: "mallory", role: "auditor", tenants: [INTRUDER, "someone-else"] });
      await refused(c().query.searchEvents({}, as(t, VICTIM)), Code.PermissionDenied);
      await refused(c().query.getEvent({ id: "v-1" }, as(t, VICTIM)), Code.PermissionDenied);
    });

    it("a User token of the intruder asking for the victim: PERMISSION_DENIED", async () => {
      const t = await ctx.jwks.sign(ctx.kid, { sub: "mallory", role: "user", tenants: [INTRUDER] });
      await refused(c().query.searchEvents({}, as(t, VICTIM)), Code.PermissionDenied);
    });

    it("an API key with the victim's tenant header: PERMISSION_DENIED", async () => {
      for (const secret of [ctx.intruder.query, ctx.intruder.all]) {
        await refused(c().query.searchEvents({}, as(secret, VICTIM)), Code.PermissionDenied);
      }
      await refused(c().ingest.append({ events: [] }, as(ctx.intruder.ingest, VICTIM)), Code.PermissionDenied);
      await refused(c().admin.listApiKeys({}, as(ctx.intruder.admin, VICTIM)), Code.PermissionDenied);
    });

    it("a revoked key: UNAUTHENTICATED at once on the replica that revoked it, even with the key cached", async () => {
      const made = await c().admin.createApiKey({ name: "to-revoke", scopes: [Scope.QUERY] }, as(ctx.intruder.admin));
      await c().query.searchEvents({}, as(made.secret)); // now in the key cache
      await c().admin.revokeApiKey({ keyId: made.key!.id }, as(ctx.intruder.admin));
      await refused(c().query.searchEvents({}, as(made.secret)), Code.Unauthenticated);
    });

    it("a rotated key's old secret: UNAUTHENTICATED at once; the new one works", async () => {
      const made = await c().admin.createApiKey({ name: "to-rotate", scopes: [Scope.QUERY] }, as(ctx.intruder.admin));
      await c().query.searchEvents({}, as(made.secret));
      const rotated = await c().admin.rotateApiKey({ keyId: made.key!.id }, as(ctx.intruder.admin));
      await refused(c().query.searchEvents({}, as(made.secret)), Code.Unauthenticated);
      expect(await c().query.searchEvents({}, as(rotated.secret))).toBeTruthy();
    });

    it("keys missing the scope: PERMISSION_DENIED", async () => {
      await refused(c().query.searchEvents({}, as(ctx.intruder.ingest)), Code.PermissionDenied);
      await refused(c().query.searchEvents({}, as(ctx.intruder.admin)), Code.PermissionDenied);
      await refused(c().ingest.append({ events: [] }, as(ctx.intruder.query)), Code.PermissionDenied);
      await refused(c().admin.listApiKeys({}, as(ctx.intruder.query)), Code.PermissionDenied);
      const auditor = await ctx.jwks.sign(ctx.kid, { sub: "mallory", role: "auditor", tenants: [INTRUDER] });
      await refused(c().admin.createApiKey({ name: "x", scopes: [Scope.ADMIN] }, as(auditor)), Code.PermissionDenied);
    });
  });

  describe("ingest claiming another tenant", () => {
    const victimTotal = async () =>
      (await c().query.searchEvents({ includeTotal: true, filter: { query: `metadata.marker:${PLANTED}` } }, as(ctx.victim.query))).total;

    it("an event with a `tenantId` / `tenant_id` field: INVALID_ARGUMENT, nothing written", async () => {
      expect(await victimTotal()).toBe(0n);
      for (const field of ["tenantId", "tenant_id"]) {
        const event = { ...toConnectJson(makeEvent(1, `claim-${field}`)), [field]: VICTIM, metadata: { marker: PLANTED } };
        const r = await fetch(`${ctx.svc.url}/auditlog.v1.IngestService/Append`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${ctx.intruder.ingest}` },
          body: JSON.stringify({ events: [event] }),
        });
        const body = (await r.json()) as { code?: string };
        expect(body.code, field).toBe("invalid_argument");
      }
      expect(await victimTotal()).toBe(0n);
    });

    it("a body with a top-level tenant field: INVALID_ARGUMENT", async () => {
      const r = await fetch(`${ctx.svc.url}/auditlog.v1.IngestService/Append`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${ctx.intruder.ingest}` },
        body: JSON.stringify({ tenantId: VICTIM, events: [toConnectJson(makeEvent(1, "claim-top"))] }),
      });
      expect(((await r.json()) as { code?: string }).code).toBe("invalid_argument");
    });

    it("tenant names in metadata, context and actor: stored in the intruder's log, the victim's untouched", async () => {
      const e = toConnectJson(makeEvent(7, "claim-fields"));
      const claimed = {
        ...e,
        metadata: { tenant_id: VICTIM, tenant: VICTIM, _routing: VICTIM, marker: PLANTED },
        context: { requestId: "r", source: VICTIM, location: VICTIM },
        actor: { ...(e.actor as object), id: VICTIM },
      };
      const r = await fetch(`${ctx.svc.url}/auditlog.v1.IngestService/Append`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${ctx.intruder.ingest}` },
        body: JSON.stringify({ events: [claimed] }),
      });
      expect(r.status).toBe(200);
      expect(await victimTotal()).toBe(0n);
      expect(await c().query.getEvent({ id: "claim-fields-7" }, as(ctx.intruder.query))).toMatchObject({ event: { tenantId: INTRUDER } });
      await refused(c().query.getEvent({ id: "claim-fields-7" }, as(ctx.victim.query)), Code.NotFound);
    });

    it("the Ingest stream with the victim's tenant header: PERMISSION_DENIED", async () => {
      async function* one() {
        yield { events: [] };
      }
      await refused(c().ingest.ingest(one(), as(ctx.intruder.ingest, VICTIM)), Code.PermissionDenied);
    });
  });

  describe("ingest over AMQP claiming another tenant (each refused message is dead-lettered with its reason)", () => {
    let conn: ChannelModel;
    let ch: ConfirmChannel;
    /** Dead letters read so far, by message id (each attempt publishes ids of its own). */
    const dead = new Map<string, { queue: string; reason: string; field: string }>();

    beforeAll(async () => {
      conn = await amqp.connect(AMQP_URL);
      ch = await conn.createConfirmChannel();
      // Declared as the consumer declares them, so reading a dead-letter queue never races its creation.
      for (const q of [VICTIM_QUEUE, KEYED_QUEUE]) {
        await ch.assertQueue(q, { durable: true });
        await ch.assertQueue(`${q}.dead`, { durable: true });
      }
    });
    afterAll(async () => {
      for (const q of [VICTIM_QUEUE, KEYED_QUEUE]) {
        await ch?.deleteQueue(q).catch(() => {});
        await ch?.deleteQueue(`${q}.dead`).catch(() => {});
      }
      await conn?.close();
    });

    const body = (id: string, extra: Record<string, unknown> = {}) =>
      Buffer.from(JSON.stringify({ ...toConnectJson(makeEvent(1, "amqp")), id, metadata: { marker: PLANTED }, ...extra }));

    function publish(queue: string, id: string, headers: Record<string, string>, content = body(id)): Promise<void> {
      return new Promise((resolve, reject) =>
        ch.sendToQueue(queue, content, { contentType: "application/json", messageId: id, headers, persistent: true }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    }

    /** The dead letter of message `id` (waits for the consumer). */
    async function deadLetter(id: string): Promise<{ queue: string; reason: string; field: string }> {
      const deadline = Date.now() + 20_000;
      while (!dead.has(id) && Date.now() < deadline) {
        let got = false;
        for (const queue of [VICTIM_QUEUE, KEYED_QUEUE]) {
          const m = await ch.get(`${queue}.dead`, { noAck: true });
          if (!m) continue;
          got = true;
          const h = m.properties.headers ?? {};
          // No key travels on to the dead-letter queue.
          expect(Object.keys(h)).not.toContain("authorization");
          expect(Object.keys(h)).not.toContain("x-api-key");
          dead.set(String(m.properties.messageId), { queue, reason: String(h["x-auditlog-reason"]), field: String(h["x-auditlog-field"]) });
        }
        if (!got) await new Promise((r) => setTimeout(r, 100));
      }
      const d = dead.get(id);
      if (!d) throw new Error(`message ${id} was not dead-lettered`);
      return d;
    }

    /** Ids stored in `tenant`'s log (straight from the table: nothing of these may be anywhere). */
    const storedIn = async (tenant: string, ids: string[]) =>
      (await ctx.svc.pool.query<{ id: string }>("SELECT id FROM events WHERE tenant_id = $1 AND id = ANY($2)", [tenant, ids])).rows.map(
        (r) => r.id,
      );

    /** Each message refused on `field` with a reason matching `reason`, and none of them stored for anyone. */
    async function refusedMessages(ids: string[], field: string, reason: RegExp): Promise<void> {
      for (const id of ids) {
        const d = await deadLetter(id);
        expect(d.field, id).toBe(field);
        expect(d.reason, id).toMatch(reason);
        noLeak(d.reason);
      }
      expect(await storedIn(VICTIM, ids)).toEqual([]);
      expect(await storedIn(INTRUDER, ids)).toEqual([]);
    }

    it("the intruder's key on a message to the queue bound to the victim: dead-lettered (authorization); the victim's own key is taken", async () => {
      await publish(VICTIM_QUEUE, "amqp-own", { authorization: `Bearer ${ctx.victim.ingest}` });
      await publish(VICTIM_QUEUE, "amqp-intruder-bearer", { authorization: `Bearer ${ctx.intruder.ingest}` });
      await publish(VICTIM_QUEUE, "amqp-intruder-x-api-key", { "x-api-key": ctx.intruder.all });
      await refusedMessages(
        ["amqp-intruder-bearer", "amqp-intruder-x-api-key"],
        "authorization",
        /belongs to another tenant than the one queue/,
      );
      // The queue works: the victim's own message is stored, in the victim's log only.
      for (let i = 0; i < 200 && (await storedIn(VICTIM, ["amqp-own"])).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await storedIn(VICTIM, ["amqp-own"])).toEqual(["amqp-own"]);
      expect(await storedIn(INTRUDER, ["amqp-own"])).toEqual([]);
    });

    it("a body naming the victim (`tenantId`, `tenant_id`) with the intruder's key: dead-lettered (not an Event), nothing stored", async () => {
      await publish(
        KEYED_QUEUE,
        "amqp-body-camel",
        { authorization: `Bearer ${ctx.intruder.ingest}` },
        body("amqp-body-camel", { tenantId: VICTIM }),
      );
      await publish(
        KEYED_QUEUE,
        "amqp-body-snake",
        { authorization: `Bearer ${ctx.intruder.ingest}` },
        body("amqp-body-snake", { tenant_id: VICTIM }),
      );
      await publish(VICTIM_QUEUE, "amqp-body-bound", {}, body("amqp-body-bound", { tenantId: INTRUDER }));
      await refusedMessages(["amqp-body-camel", "amqp-body-snake", "amqp-body-bound"], "", /not an auditlog\.v1\.Event in JSON/);
    });

    it("a message writing into the access audit's reserved namespace (`auditlog.*`): dead-lettered (action), on either queue", async () => {
      const reserved = (id: string) => body(id, { action: "auditlog.query.search_events" });
      await publish(
        KEYED_QUEUE,
        "amqp-reserved-keyed",
        { authorization: `Bearer ${ctx.intruder.ingest}` },
        reserved("amqp-reserved-keyed"),
      );
      await publish(VICTIM_QUEUE, "amqp-reserved-bound", {}, reserved("amqp-reserved-bound"));
      await refusedMessages(["amqp-reserved-keyed", "amqp-reserved-bound"], "action", /reserved for the service's access audit/);
    });

    it("a revoked key, already used: dead-lettered (authorization) on the keyed queue and on the victim's", async () => {
      const made = await c().admin.createApiKey({ name: "amqp-revoked", scopes: [Scope.INGEST] }, as(ctx.intruder.admin));
      await publish(KEYED_QUEUE, "amqp-before-revoke", { authorization: `Bearer ${made.secret}` });
      for (let i = 0; i < 200 && (await storedIn(INTRUDER, ["amqp-before-revoke"])).length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await storedIn(INTRUDER, ["amqp-before-revoke"])).toEqual(["amqp-before-revoke"]); // the key was cached
      await c().admin.revokeApiKey({ keyId: made.key!.id }, as(ctx.intruder.admin));
      await publish(KEYED_QUEUE, "amqp-revoked-keyed", { authorization: `Bearer ${made.secret}` });
      await publish(VICTIM_QUEUE, "amqp-revoked-bound", { authorization: `Bearer ${made.secret}` });
      await refusedMessages(["amqp-revoked-keyed", "amqp-revoked-bound"], "authorization", /invalid, expired or revoked API key/);
    });

    it("keys without the ingest scope, the operator key and a person's token: dead-lettered (authorization)", async () => {
      const adminToken = await ctx.jwks.sign(ctx.kid, { sub: "mallory", role: "admin", tenants: [INTRUDER] });
      const attempts: [string, string][] = [
        ["amqp-query-key", ctx.intruder.query],
        ["amqp-admin-key", ctx.intruder.admin],
        ["amqp-operator-key", BOOTSTRAP_KEY],
        ["amqp-admin-token", adminToken],
      ];
      for (const [id, secret] of attempts) await publish(KEYED_QUEUE, id, { authorization: `Bearer ${secret}` });
      await refusedMessages(["amqp-query-key", "amqp-admin-key"], "authorization", /scope/);
      await refusedMessages(["amqp-operator-key"], "authorization", /the bootstrap key can only call AdminService/);
      await refusedMessages(["amqp-admin-token"], "authorization", /may not call|only a tenant's API key/);
    });
  });

  describe("row-level security as the only guard (the application's tenant condition bypassed)", () => {
    it("withTenantRead as the intruder, raw SQL without a tenant condition: every table shows only the intruder's rows", async () => {
      const tables = [...(await tenantTables(ctx.svc.pool)), "tenants"];
      expect(tables).toEqual(
        expect.arrayContaining(["events", "event_ids", "chain_heads", "api_keys", "index_failures", "index_progress"]),
      );
      for (const table of tables) {
        const column = table === "tenants" ? "id" : "tenant_id";
        const readable = (
          await ctx.svc.pool.query<{ ok: boolean }>("SELECT has_table_privilege('auditlog_reader', $1, 'SELECT') AS ok", [table])
        ).rows[0]!.ok;
        const read = withTenantRead(ctx.svc.readPool, INTRUDER, async (db) => {
          const all = await db.query<{ t: string }>(`SELECT DISTINCT ${column} AS t FROM ${table}`);
          const named = await db.query(`SELECT * FROM ${table} WHERE ${column} = $1`, [VICTIM]);
          return { tenants: all.rows.map((r) => r.t), victimRows: named.rowCount };
        });
        if (readable) {
          const seen = await read;
          expect(seen.victimRows, table).toBe(0);
          expect(
            seen.tenants.filter((t) => t !== INTRUDER),
            table,
          ).toEqual([]);
        } else {
          // Not even readable by the reader role: refused outright (insufficient_privilege).
          await expect(read, table).rejects.toMatchObject({ code: "42501" });
        }
      }
      // The victim's rows exist: the empty answers above are the policy's doing.
      const victims = await ctx.svc.pool.query("SELECT 1 FROM events WHERE tenant_id = $1", [VICTIM]);
      expect(victims.rowCount).toBeGreaterThan(0);
    });

    it("withTenantRead as the intruder, `select * from events`: the intruder's rows only", async () => {
      const rows = await withTenantRead(ctx.svc.readPool, INTRUDER, async (db) => (await db.query("SELECT * FROM events")).rows);
      expect(rows.length).toBeGreaterThanOrEqual(4);
      for (const r of rows) expect(r.tenant_id).toBe(INTRUDER);
      onlyIntruders(rows);
    });

    it("the search backend asked for the victim's ids as the intruder: nothing", async () => {
      const page = await ctx.svc.backend.search(
        INTRUDER,
        { conditions: [{ kind: "terms", field: "id", values: VICTIM_ONLY }] },
        "asc",
        null,
        100,
        true,
      );
      expect(page.records).toEqual([]);
      expect(page.total).toBe(0n);
    });
  });
});

describe("cross-tenant attacks (Elasticsearch search)", () => {
  let ctx: Ctx;
  const prefix = `test-attack-${randomBytes(4).toString("hex")}`;
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

  readAttacks(() => ctx);

  it("the Elasticsearch backend asked for the victim's ids as the intruder: nothing", async () => {
    const page = await ctx.svc.backend.search(
      INTRUDER,
      { conditions: [{ kind: "terms", field: "id", values: VICTIM_ONLY }] },
      "asc",
      null,
      100,
      true,
    );
    expect(page.records).toEqual([]);
    expect(page.total).toBe(0n);
  });
});
