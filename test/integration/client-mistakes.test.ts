// Client mistakes are answered INVALID_ARGUMENT (or NOT_FOUND) naming the
// field, on gRPC and on Connect, never INTERNAL, and nothing is stored for
// them: timestamps outside their range or not in canonical form, impossible
// calendar dates in JSON, NUL characters in parameters that reach PostgreSQL,
// numbers beyond PostgreSQL's bigint, forged page tokens, unparsable binary
// bodies. Issue 9, findings 3 to 5.
import http2 from "node:http2";
import { create, toJsonString } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { EventFilterSchema } from "../../gen/auditlog/v1/query_pb.js";
import { queryFingerprint } from "../../src/domain/page-token.ts";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { bearer, type GrpcStub, loadAuditlogStubs, newClient } from "../../scripts/lib/grpc-client.ts";
import { makeEvent, toConnectJson, toProtoLoader } from "../support/events.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

type GrpcAnswer = { code: number; details: string; value?: any };

function unary(client: GrpcStub, method: string, req: unknown, secret: string): Promise<GrpcAnswer> {
  return new Promise((resolve) => {
    client[method](req, bearer(secret), (err: grpc.ServiceError | null, value: unknown) =>
      resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "", value }),
    );
  });
}

function ingest(client: GrpcStub, messages: unknown[], secret: string): Promise<GrpcAnswer> {
  return new Promise((resolve) => {
    const call = client.Ingest(bearer(secret), (err: grpc.ServiceError | null, value: unknown) =>
      resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "", value }),
    );
    for (const m of messages) call.write(m);
    call.end();
  });
}

function serverStream(client: GrpcStub, method: string, req: unknown, secret: string): Promise<GrpcAnswer> {
  return new Promise((resolve) => {
    const call = client[method](req, bearer(secret));
    call.on("data", () => {});
    call.on("error", (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details }));
    call.on("end", () => resolve({ code: 0, details: "" }));
  });
}

function envelope(payload: Buffer, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** A Connect streaming call over HTTP/2; the answer is the end-stream message's error (or "ok"). */
function connectStream(
  url: string,
  path: string,
  contentType: string,
  body: Buffer,
  secret: string,
): Promise<{ code: string; message: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": contentType, authorization: `Bearer ${secret}` });
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      session.close();
      const all = Buffer.concat(chunks);
      let at = 0;
      while (at + 5 <= all.length) {
        const flags = all[at]!;
        const len = all.readUInt32BE(at + 1);
        const payload = all.subarray(at + 5, at + 5 + len);
        at += 5 + len;
        if (flags & 0x02) {
          const end = JSON.parse(payload.toString("utf8")) as { error?: { code: string; message: string } };
          return resolve(end.error ? { code: end.error.code, message: end.error.message } : { code: "ok", message: "" });
        }
      }
      resolve({ code: `no end-stream message (${all.length} bytes)`, message: "" });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;

describe("client mistakes are INVALID_ARGUMENT with the field (PostgreSQL backend)", () => {
  let svc: TestService;
  let keys: TenantKeys;
  let ingestClient: GrpcStub;
  let queryClient: GrpcStub;
  let adminClient: GrpcStub;
  const count = async () => Number((await svc.pool.query("SELECT count(*)::int AS n FROM events")).rows[0].n);

  beforeAll(async () => {
    svc = await startTestService();
    keys = await createTenantWithKeys(svc.url, "mistakes");
    const stubs = loadAuditlogStubs();
    ingestClient = newClient(stubs.IngestService, svc.url);
    queryClient = newClient(stubs.QueryService, svc.url);
    adminClient = newClient(stubs.AdminService, svc.url);
    const r = await connectCall(
      svc.url,
      "auditlog.v1.IngestService/Append",
      { events: [0, 1, 2].map((i) => toConnectJson(makeEvent(i, "seed"))) },
      keys.ingest,
    );
    expect(r.status).toBe(200);
  });
  afterAll(async () => {
    for (const c of [ingestClient, queryClient, adminClient]) c?.close();
    await svc?.stop();
  });

  describe("finding 3: timestamps over gRPC are validated exactly, per event", () => {
    const withTime = (i: number, occurredAt: unknown) => ({ ...toProtoLoader(makeEvent(i, "ts")), occurredAt });
    const bad = [
      { seconds: "9223372035", nanos: 1_999_999_999 }, // would be stored as 2262-04-11T23:47:16.999999Z
      { seconds: "1700000000", nanos: -1 },
      { seconds: "1700000000", nanos: 2_000_000_000 },
      { seconds: "1700000000", nanos: 1_000_000_000 },
      { seconds: "9223372036", nanos: 854_775_001 }, // past the window by one nanosecond
      { seconds: "-1", nanos: 999_999_999 }, // before 1970
      { seconds: "253402300800", nanos: 0 }, // past year 9999
      { seconds: "-9223372036854775808", nanos: 0 },
    ];

    it("Append rejects each bad occurred_at with its field and stores only the good event", async () => {
      const before = await count();
      const events = [...bad.map((t, i) => withTime(100 + i, t)), withTime(199, { seconds: "9223372036", nanos: 854_775_000 })];
      const r = await unary(ingestClient, "Append", { events }, keys.ingest);
      expect(r.code, r.details).toBe(0);
      const s = r.value.summary;
      expect(s).toMatchObject({ accepted: "1", rejected: String(bad.length) });
      expect(s.results.map((x: any) => [x.index, x.status, x.field])).toEqual(
        bad.map((_, i) => [i, "EVENT_STATUS_REJECTED", "occurred_at"]),
      );
      expect(await count()).toBe(before + 1);
      // The last instant of the window is stored as sent, and found again.
      const stored = await svc.pool.query(
        "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS t FROM events WHERE id = 'ts-199'",
      );
      expect(stored.rows[0]?.t).toBe("2262-04-11T23:47:16.854775");
    });

    it("Ingest rejects them the same way in its summary", async () => {
      const before = await count();
      const r = await ingest(
        ingestClient,
        [{ events: bad.slice(0, 4).map((t, i) => withTime(200 + i, t)) }, { events: bad.slice(4).map((t, i) => withTime(210 + i, t)) }],
        keys.ingest,
      );
      expect(r.code, r.details).toBe(0);
      expect(r.value.summary).toMatchObject({ accepted: "0", rejected: String(bad.length) });
      expect(r.value.summary.results.every((x: any) => x.field === "occurred_at" && x.status === "EVENT_STATUS_REJECTED")).toBe(true);
      expect(await count()).toBe(before);
    });

    it("Append of only bad events fails with INVALID_ARGUMENT naming occurred_at", async () => {
      const r = await unary(ingestClient, "Append", { events: [withTime(300, { seconds: "1700000000", nanos: -1 })] }, keys.ingest);
      expect(r.code).toBe(INVALID_ARGUMENT);
      expect(r.details).toContain("occurred_at");
    });

    it("filter time bounds with bad nanos or past year 9999 are INVALID_ARGUMENT over gRPC", async () => {
      for (const filter of [
        { occurredAfter: { seconds: "1700000000", nanos: -1 } },
        { occurredBefore: { seconds: "1700000000", nanos: 1_000_000_000 } },
        { occurredBefore: { seconds: "253402300800", nanos: 0 } },
        { occurredAfter: { seconds: "9223372036854775807", nanos: 0 } },
        { occurredAfter: { seconds: "-62135596801", nanos: 0 } },
      ]) {
        const field = Object.keys(filter)[0] === "occurredAfter" ? "filter.occurred_after" : "filter.occurred_before";
        const s = await unary(queryClient, "SearchEvents", { filter }, keys.query);
        expect(s.code, `${JSON.stringify(filter)}: ${s.details}`).toBe(INVALID_ARGUMENT);
        expect(s.details).toContain(field);
        const st = await unary(queryClient, "GetStats", { filter }, keys.query);
        expect(st.code, st.details).toBe(INVALID_ARGUMENT);
        const ex = await serverStream(queryClient, "ExportEvents", { filter }, keys.query);
        expect(ex.code, ex.details).toBe(INVALID_ARGUMENT);
      }
    });

    it("the last instant of year 9999 is still a valid bound", async () => {
      const r = await unary(
        queryClient,
        "SearchEvents",
        { filter: { occurredBefore: { seconds: "253402300799", nanos: 999_999_999 } }, pageSize: 1 },
        keys.query,
      );
      expect(r.code, r.details).toBe(0);
      const q = await connectCall(
        svc.url,
        "auditlog.v1.QueryService/SearchEvents",
        { filter: { query: "occurred_at<=9999-12-31T23:59:59.999999999Z" }, pageSize: 1 },
        keys.query,
      );
      expect(q.status, JSON.stringify(q.body)).toBe(200);
    });
  });

  describe("finding 4: impossible calendar dates in JSON are refused, not moved", () => {
    const append = (events: unknown[]) => connectCall(svc.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);

    it("Append over Connect JSON refuses 2026-02-30 and friends, naming the field", async () => {
      const before = await count();
      for (const t of [
        "2026-02-30T00:00:00Z",
        "2026-04-31T12:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T12:00:00+24:00",
        "2026-01-01T12:00:00+01:60",
      ]) {
        const r = await append([toConnectJson(makeEvent(1, "cal")), { ...toConnectJson(makeEvent(2, "cal")), occurredAt: t }]);
        expect(r.status, `${t}: ${JSON.stringify(r.body)}`).toBe(400);
        expect(r.body.code).toBe("invalid_argument");
        expect(r.body.message).toContain("events[1].occurred_at");
      }
      // The proto field name is accepted in JSON too, and checked the same way.
      const snake = await append([{ ...toConnectJson(makeEvent(3, "cal")), occurredAt: undefined, occurred_at: "2026-02-30T00:00:00Z" }]);
      expect(snake.body.code).toBe("invalid_argument");
      expect(snake.body.message).toContain("events[0].occurred_at");
      expect(await count()).toBe(before);
    });

    it("accepts real dates: leap days, offsets, nine fraction digits", async () => {
      const r = await append([
        { ...toConnectJson(makeEvent(10, "cal-ok")), occurredAt: "2024-02-29T23:59:59.123456789Z" },
        { ...toConnectJson(makeEvent(11, "cal-ok")), occurredAt: "2026-03-01T00:30:00+01:00" },
      ]);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      const rows = await svc.pool.query(
        "SELECT id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS t FROM events WHERE id LIKE 'cal-ok-%' ORDER BY id",
      );
      expect(rows.rows.map((x) => x.t)).toEqual(["2024-02-29T23:59:59.123456", "2026-02-28T23:30:00.000000"]);
    });

    it("a calendar date inside a string field is just text", async () => {
      const r = await append([
        { ...toConnectJson(makeEvent(12, "cal-text")), message: "2026-02-30T00:00:00Z", metadata: { when: "2026-02-30T00:00:00Z" } },
      ]);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    });

    it("filter time bounds and expires_at get the same strictness", async () => {
      const s = await connectCall(
        svc.url,
        "auditlog.v1.QueryService/SearchEvents",
        { filter: { occurredAfter: "2026-02-30T00:00:00Z" } },
        keys.query,
      );
      expect(s.body.code).toBe("invalid_argument");
      expect(s.body.message).toContain("filter.occurred_after");
      const st = await connectCall(
        svc.url,
        "auditlog.v1.QueryService/GetStats",
        { filter: { occurredBefore: "2026-06-31T00:00:00Z" } },
        keys.query,
      );
      expect(st.body.message).toContain("filter.occurred_before");
      const k = await connectCall(
        svc.url,
        "auditlog.v1.AdminService/CreateApiKey",
        { tenantId: keys.tenantId, scopes: ["SCOPE_QUERY"], expiresAt: "2099-02-30T00:00:00Z" },
        BOOTSTRAP_KEY,
      );
      expect(k.body.code).toBe("invalid_argument");
      expect(k.body.message).toContain("expires_at");
      const http = await fetch(`${svc.url}/v1/export?occurred_after=2026-02-30T00:00:00Z`, {
        headers: { authorization: `Bearer ${keys.query}` },
      });
      expect(http.status).toBe(400);
      expect(((await http.json()) as { message: string }).message).toContain("occurred_after");
    });

    it("Connect streaming JSON (Ingest) refuses them too", async () => {
      const before = await count();
      const msg = Buffer.from(
        JSON.stringify({ events: [{ ...toConnectJson(makeEvent(20, "cal-stream")), occurredAt: "2026-02-30T00:00:00Z" }] }),
      );
      const r = await connectStream(svc.url, "/auditlog.v1.IngestService/Ingest", "application/connect+json", envelope(msg), keys.ingest);
      expect(r.code).toBe("invalid_argument");
      expect(r.message).toContain("events[0].occurred_at");
      expect(await count()).toBe(before);
    });
  });

  describe("finding 5: INTERNAL for client mistakes", () => {
    it("(a) NUL in GetEvent's id: INVALID_ARGUMENT naming id, gRPC and Connect", async () => {
      const g = await unary(queryClient, "GetEvent", { id: "seed-\u00001" }, keys.query);
      expect([INVALID_ARGUMENT, NOT_FOUND]).toContain(g.code);
      expect(g.details).toContain("id");
      const c = await connectCall(svc.url, "auditlog.v1.QueryService/GetEvent", { id: "a\u0000" }, keys.query);
      expect(["invalid_argument", "not_found"]).toContain(c.body.code);
    });

    it("(a) NUL in search and stats filter values", async () => {
      const filters: [Record<string, unknown>, string][] = [
        [{ ids: ["x\u0000"] }, "filter.ids[0]"],
        [{ actorIds: ["x\u0000"] }, "filter.actor_ids[0]"],
        [{ sessionIds: ["x\u0000"] }, "filter.session_ids[0]"],
        [{ targetTypes: ["x\u0000"] }, "filter.target_types[0]"],
        [{ targetIds: ["x\u0000"] }, "filter.target_ids[0]"],
        [{ requestIds: ["x\u0000"] }, "filter.request_ids[0]"],
        [{ traceIds: ["x\u0000"] }, "filter.trace_ids[0]"],
        [{ sources: ["x\u0000"] }, "filter.sources[0]"],
        [{ locations: ["ok", "x\u0000"] }, "filter.locations[1]"],
        [{ metadata: [{ key: "plan", values: ["p\u0000"] }] }, "filter.metadata[0].values[0]"],
        [{ metadata: [{ key: "pl\u0000an" }] }, "filter.metadata[0].key"],
        [{ text: "word\u0000" }, "filter.text"],
        [{ query: 'actor.id:"x\u0000"' }, "filter.query"],
      ];
      for (const [filter, field] of filters) {
        for (const method of ["SearchEvents", "GetStats"]) {
          const g = await unary(queryClient, method, { filter }, keys.query);
          expect(g.code, `${method} ${JSON.stringify(filter)}: ${g.details}`).toBe(INVALID_ARGUMENT);
          expect(g.details).toContain(field);
        }
        const c = await connectCall(svc.url, "auditlog.v1.QueryService/SearchEvents", { filter }, keys.query);
        expect(c.body.code, JSON.stringify(c.body)).toBe("invalid_argument");
        const ex = await serverStream(queryClient, "ExportEvents", { filter }, keys.query);
        expect(ex.code, ex.details).toBe(INVALID_ARGUMENT);
      }
    });

    it("(a) NUL in AdminService's tenant, key and name parameters", async () => {
      const calls: [string, Record<string, unknown>, string][] = [
        ["CreateTenant", { id: "nul-tenant", name: "n\u0000" }, "name"],
        ["CreateApiKey", { tenantId: "mis\u0000takes", name: "k", scopes: ["SCOPE_QUERY"] }, "tenant_id"],
        ["CreateApiKey", { tenantId: "mistakes", name: "k\u0000", scopes: ["SCOPE_QUERY"] }, "name"],
        ["ListApiKeys", { tenantId: "mis\u0000takes" }, "tenant_id"],
        ["RotateApiKey", { keyId: "k\u0000" }, "key_id"],
        ["RevokeApiKey", { keyId: "k\u0000" }, "key_id"],
      ];
      for (const [method, req, field] of calls) {
        const g = await unary(adminClient, method, req, BOOTSTRAP_KEY);
        expect([INVALID_ARGUMENT, NOT_FOUND], `${method}: ${g.details}`).toContain(g.code);
        expect(g.details).toContain(field);
        const c = await connectCall(svc.url, `auditlog.v1.AdminService/${method}`, req, BOOTSTRAP_KEY);
        expect(["invalid_argument", "not_found"], JSON.stringify(c.body)).toContain(c.body.code);
      }
    });

    it("(a) NUL in the HTTP export's parameters", async () => {
      for (const q of ["actor_id=x%00", "text=a%00", "query=actor.id%3Ax%00", "metadata.plan=p%00", "metadata.pl%00an=p", "location=%00"]) {
        const r = await fetch(`${svc.url}/v1/export?${q}`, { headers: { authorization: `Bearer ${keys.query}` } });
        const body = await r.text();
        expect(r.status, `${q}: ${body}`).toBe(400);
        expect(JSON.parse(body).code).toBe("invalid_argument");
      }
    });

    it("(b) VerifyChain with from_sequence or to_sequence above 2^63-1", async () => {
      for (const req of [{ fromSequence: "9223372036854775808" }, { fromSequence: "18446744073709551615" }]) {
        const g = await unary(queryClient, "VerifyChain", req, keys.query);
        expect(g.code, g.details).toBe(INVALID_ARGUMENT);
        expect(g.details).toContain("from_sequence");
      }
      const c = await connectCall(svc.url, "auditlog.v1.QueryService/VerifyChain", { fromSequence: "18446744073709551615" }, keys.query);
      expect(c.body.code).toBe("invalid_argument");
      const ok = await unary(queryClient, "VerifyChain", { fromSequence: "9223372036854775807" }, keys.query);
      expect(ok.code, ok.details).toBe(0);
    });

    it("(c) forged page tokens with numbers out of range: INVALID_ARGUMENT on page_token", async () => {
      const fingerprint = queryFingerprint(keys.tenantId, {
        filter: toJsonString(EventFilterSchema, create(EventFilterSchema)),
        direction: "desc",
      });
      const forge = (occurredAt: string, sequence: string) =>
        Buffer.from(`1|${fingerprint}|${occurredAt}|${sequence}`).toString("base64url");
      // A genuine token works.
      const first = await connectCall<{ nextPageToken: string }>(
        svc.url,
        "auditlog.v1.QueryService/SearchEvents",
        { pageSize: 1 },
        keys.query,
      );
      expect(first.body.nextPageToken).toBeTruthy();
      for (const token of [
        forge("99999999999999999999999999", "1"),
        forge("-99999999999999999999999999", "1"),
        forge("253402300800000000", "1"),
        forge("1700000000000000", "99999999999999999999"),
        forge("1700000000000000", "9223372036854775808"),
        forge("1700000000000000", "0"),
      ]) {
        const c = await connectCall(svc.url, "auditlog.v1.QueryService/SearchEvents", { pageSize: 1, pageToken: token }, keys.query);
        expect(c.body.code, `${Buffer.from(token, "base64url").toString()}: ${JSON.stringify(c.body)}`).toBe("invalid_argument");
        expect(c.body.message).toContain("page_token");
        const g = await unary(queryClient, "SearchEvents", { pageSize: 1, pageToken: token }, keys.query);
        expect(g.code, g.details).toBe(INVALID_ARGUMENT);
      }
    });

    it("(d) query string time bounds at the edge of year 9999", async () => {
      for (const query of [
        "occurred_at<=9999-12-31T23:59:59.9999999Z",
        "occurred_at>9999-12-31T23:59:59.999999999Z",
        "occurred_at>=0001-01-01",
      ]) {
        const c = await connectCall(svc.url, "auditlog.v1.QueryService/SearchEvents", { filter: { query } }, keys.query);
        expect(c.status, `${query}: ${JSON.stringify(c.body)}`).toBe(200);
      }
    });

    it("(e) an unparsable binary body over the Connect protocol is INVALID_ARGUMENT", async () => {
      const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
      const r = await fetch(`${svc.url}/auditlog.v1.IngestService/Append`, {
        method: "POST",
        headers: { "content-type": "application/proto", authorization: `Bearer ${keys.ingest}` },
        body: garbage,
      });
      const body = (await r.json()) as { code: string; message: string };
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(body.code).toBe("invalid_argument");
      const s = await connectStream(
        svc.url,
        "/auditlog.v1.IngestService/Ingest",
        "application/connect+proto",
        envelope(garbage),
        keys.ingest,
      );
      expect(s.code).toBe("invalid_argument");
    });
  });
});

describe("page tokens and time bounds on the Elasticsearch backend", () => {
  let svc: TestService;
  let keys: TenantKeys;

  beforeAll(async () => {
    svc = await startTestService({ ELASTICSEARCH_URL: inject("elasticsearchUrl"), AUDITLOG_RECONCILE_INTERVAL_MS: "0" });
    keys = await createTenantWithKeys(svc.url, `mistakes-es-${Date.now()}`);
  });
  afterAll(() => svc?.stop());

  it("refuses forged page tokens and impossible bounds with INVALID_ARGUMENT", async () => {
    const fingerprint = queryFingerprint(keys.tenantId, {
      filter: toJsonString(EventFilterSchema, create(EventFilterSchema)),
      direction: "desc",
    });
    for (const [occurredAt, sequence] of [
      ["99999999999999999999999999", "1"],
      ["1700000000000000", "99999999999999999999"],
      ["9223372036854776", "1"],
    ]) {
      const token = Buffer.from(`1|${fingerprint}|${occurredAt}|${sequence}`).toString("base64url");
      const c = await connectCall(svc.url, "auditlog.v1.QueryService/SearchEvents", { pageSize: 1, pageToken: token }, keys.query);
      expect(c.body.code, JSON.stringify(c.body)).toBe("invalid_argument");
      expect(c.body.message).toContain("page_token");
    }
    const c = await connectCall(
      svc.url,
      "auditlog.v1.QueryService/SearchEvents",
      { filter: { occurredAfter: "2026-02-30T00:00:00Z" } },
      keys.query,
    );
    expect(c.body.code).toBe("invalid_argument");
  });
});
