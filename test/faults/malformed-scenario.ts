// Fault 5: many malformed requests (random gRPC frames, wrong content types,
// JSON with wrong types, truncated frames, huge fields, HTTP/2 garbage, bad
// gRPC-Web base64, and the client mistakes of issue 9: timestamps out of
// range or off the calendar, NUL characters, numbers past bigint, forged page
// tokens, unparsable Connect binary bodies) while a correct producer keeps
// appending. Run by test/faults/malformed.test.ts, with the size as a parameter.
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { create, type DescMessage, type MessageInitShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import pg from "pg";
import { AdminService } from "../../gen/auditlog/v1/admin_pb.js";
import { AppendRequestSchema } from "../../gen/auditlog/v1/ingest_pb.js";
import { EventFilterSchema, QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { queryFingerprint } from "../../src/domain/page-token.ts";
import { type ChildService, startChildService } from "../support/child-service.ts";
import { freshDatabase } from "../support/db.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys } from "../support/service.ts";
import { appendProducer, type FaultReport, newStats, printReport, sleep, storedStats } from "./harness.ts";

const APPEND = "/auditlog.v1.IngestService/Append";
const INGEST = "/auditlog.v1.IngestService/Ingest";

/** One answer: `<kind>:<what came back>`, e.g. grpc-random:grpc=3, json-types:http=400/invalid_argument. */
type Outcome = { kind: string; answer: string };

function frame(payload: Buffer, declaredLength = payload.length, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([head, payload]);
}

/** A gRPC(-Web) call over a raw HTTP/2 stream; the answer is grpc-status (headers or trailers) or the HTTP status. */
function h2Call(
  session: http2.ClientHttp2Session,
  path: string,
  contentType: string,
  body: Buffer,
  key: string,
  extraHeaders: Record<string, string> = {},
): Promise<string> {
  return new Promise((resolve) => {
    let status = 0;
    let grpcStatus: string | undefined;
    let lastMessage = "";
    let settled = false;
    const done = (s: string) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(`${s}\u0000${lastMessage}`);
      }
    };
    const timer = setTimeout(() => {
      done("timeout");
      req.close(http2.constants.NGHTTP2_CANCEL);
    }, 15_000);
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": contentType,
        te: "trailers",
        authorization: `Bearer ${key}`,
        ...extraHeaders,
      });
    } catch (err) {
      clearTimeout(timer);
      resolve(`session-error(${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      return;
    }
    req.on("response", (h) => {
      status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) lastMessage = decodeURIComponent(String(h["grpc-message"]));
    });
    req.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) grpcStatus = String(t["grpc-status"]);
      if (t["grpc-message"] !== undefined) lastMessage = decodeURIComponent(String(t["grpc-message"]));
    });
    let bodyText = "";
    req.on("data", (d: Buffer) => {
      if (bodyText.length < 4096) bodyText += d.toString("latin1");
    });
    req.on("end", () => {
      if (grpcStatus === undefined && contentType.startsWith("application/grpc-web")) {
        // gRPC-Web puts the trailers in the body.
        const m = /grpc-status:\s*(\d+)/.exec(bodyText);
        if (m) grpcStatus = m[1];
        const mm = /grpc-message:\s*([^\r\n]*)/.exec(bodyText);
        if (mm) lastMessage = decodeURIComponent(mm[1]!);
      }
      done(grpcStatus !== undefined ? `grpc=${grpcStatus}` : `http=${status}`);
    });
    req.on("error", (err) => done(`stream-error(${(err as NodeJS.ErrnoException).code ?? err.message})`));
    req.on("close", () => done(grpcStatus !== undefined ? `grpc=${grpcStatus}` : status ? `http=${status}` : `reset(${req.rstCode})`));
    req.end(body);
  });
}

async function fetchCall(url: string, path: string, contentType: string, body: string | Buffer | null, key: string): Promise<string> {
  try {
    const res = await fetch(`${url}${path}`, {
      method: body === null ? "GET" : "POST",
      headers: { ...(body === null ? {} : { "content-type": contentType }), authorization: `Bearer ${key}` },
      ...(body === null ? {} : { body }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let lastMessage = "";
    let code = "";
    try {
      const j = JSON.parse(text) as { code?: string; message?: string };
      code = j.code ?? "";
      lastMessage = j.message ?? "";
    } catch {
      const m = /grpc-status:\s*(\d+)/.exec(text) ?? (res.headers.get("grpc-status") ? [null, res.headers.get("grpc-status")] : null);
      if (m) code = `grpc=${m[1]}`;
      const mm = /grpc-message:\s*([^\r\n]*)/.exec(text);
      lastMessage = mm ? decodeURIComponent(mm[1]!) : "";
    }
    return `http=${res.status}${code ? `/${code}` : ""}\u0000${lastMessage}`;
  } catch (err) {
    return `network(${(err as Error).name})`;
  }
}

/** Connection timeouts of the service under test, short so that a connection left open shows within the run. */
const HEADERS_TIMEOUT_MS = 2_000;
const IDLE_TIMEOUT_MS = 3_000;

/**
 * Raw bytes on a TCP connection: HTTP/2 preface plus garbage, or garbage alone.
 * A connection the server has not closed after 3 s is answered "...-open" and
 * stays in `open`: the server must still close it (its connection timeouts).
 */
function rawGarbage(port: number, bytes: Buffer, open: Set<net.Socket>): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    open.add(sock);
    sock.once("close", () => open.delete(sock));
    let got = "";
    let settled = false;
    const done = (s: string) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        if (!s.endsWith("-open")) sock.destroy();
        resolve(s);
      }
    };
    const timer = setTimeout(() => done(got ? "answered-open" : "no-answer-open"), 3_000);
    sock.on("data", (d: Buffer) => {
      if (got.length < 64) got += d.toString("latin1");
      // An HTTP/1.1 answer ends the exchange; an HTTP/2 server answers with SETTINGS/GOAWAY frames.
      if (got.startsWith("HTTP/1.1 ")) done(`http1=${got.slice(9, 12)}`);
    });
    sock.on("error", () => done(got ? "answered-closed" : "closed"));
    sock.on("close", () => done(got ? (got.startsWith("HTTP/1.1 ") ? `http1=${got.slice(9, 12)}` : "answered-closed") : "closed"));
    sock.write(bytes);
  });
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

const JSON_BODIES: string[] = [
  `{"events": "not a list"}`,
  `{"events": [{"id": 42, "occurredAt": "2026-11-01T00:00:00Z", "action": "a.b"}]}`,
  `{"events": [{"id": "x", "occurredAt": 1234567, "action": "a.b"}]}`,
  `{"events": [{"id": "x", "occurredAt": "yesterday", "action": "a.b"}]}`,
  `{"events": [{"id": "x", "outcome": "OUTCOME_MAYBE"}]}`,
  `{"events": [{"id": "x", "actor": "bob"}]}`,
  `{"events": [{"id": "x", "metadata": "not an object"}]}`,
  `{"events": [{"id": "x", "metadata": {"a": 1e999}}]}`,
  `{"events": [null]}`,
  `{"events": [1, 2, 3]}`,
  `{"noSuchField": true}`,
  `[1, 2, 3]`,
  `"a string"`,
  `null`,
  `{"events": [`,
  `{"events": [{"id": "\\ud800"}]}`,
  ``,
  `\u0000\u0001\u0002`,
];

const GOOD_EVENT = { id: "m-1", occurredAt: "2026-11-01T00:00:00Z", action: "a.b", actor: { id: "u" } };

/** Timestamps a client may send over gRPC that are not valid ones (seconds, nanos). */
const BAD_BINARY_TIMES: [bigint, number][] = [
  [9_223_372_035n, 1_999_999_999],
  [1_700_000_000n, -1],
  [1_700_000_000n, 2_000_000_000],
  [9_223_372_036n, 854_775_001],
  [253_402_300_800n, 0],
  [-(2n ** 63n), 0],
];

/** Of those, the ones that are no valid Timestamp at all (the others are valid filter bounds). */
const BAD_FILTER_TIMES = BAD_BINARY_TIMES.filter(([seconds]) => seconds !== 9_223_372_036n);

/** Impossible or out-of-range dates in JSON that Date.parse would move to another day. */
const BAD_JSON_TIMES = [
  "2026-02-30T00:00:00Z",
  "2026-04-31T00:00:00Z",
  "2025-02-29T00:00:00Z",
  "2026-01-01T24:00:00Z",
  "2026-01-01T00:00:00+24:00",
  "0000-01-01T00:00:00Z",
];

/** Filter values with a NUL character, each reaching PostgreSQL as a parameter. */
const NUL_FILTERS: Record<string, unknown>[] = [
  { ids: ["x\u0000"] },
  { actorIds: ["x\u0000"] },
  { targetTypes: ["x\u0000"] },
  { sources: ["x\u0000"] },
  { metadata: [{ key: "plan", values: ["p\u0000"] }] },
  { metadata: [{ key: "p\u0000" }] },
  { text: "w\u0000" },
  { query: 'actor.id:"x\u0000"' },
];

const NUL_EXPORT_PARAMS = ["actor_id=x%00", "text=a%00", "query=actor.id%3Ax%00", "metadata.plan=p%00", "metadata.p%00=v", "location=%00"];

/** The expected answer to a client mistake: INVALID_ARGUMENT, or NOT_FOUND for a lookup. */
function isMistakeAnswered(answer: string): boolean {
  return /^(grpc=(3|5)|http=400\/invalid_argument|http=404\/not_found)$/.test(answer);
}

function grpcPath(service: { typeName: string }, method: string): string {
  return `/${service.typeName}/${method}`;
}

export type MalformedResult = FaultReport & {
  badRequests: number;
  distribution: Record<string, number>;
  forbidden: Record<string, number>;
  samples: Record<string, string>;
  serverAlive: boolean;
  producerCodes: Record<string, number>;
  anomalies: string[];
  /** Client mistakes sent (kinds "mistake-*"), and those not answered INVALID_ARGUMENT / NOT_FOUND. */
  mistakesSent: number;
  mistakesMisanswered: Record<string, number>;
  /** Garbage connections the server had not closed by the end (it must close every one). */
  garbageLeftOpen: number;
};

/** Answers that a client mistake must never get. */
function isForbidden(o: Outcome): boolean {
  const a = o.answer;
  if (/grpc=(13|2)\b/.test(a)) return true; // INTERNAL, UNKNOWN
  if (/http=5\d\d/.test(a) || /http1=5\d\d/.test(a)) return true;
  if (/\/(internal|unknown)\b/.test(a)) return true;
  if (a === "timeout") return true;
  // Connection-level endings are proper answers to connection-level garbage only.
  if (!o.kind.startsWith("h2-garbage") && !o.kind.startsWith("tcp-garbage") && /^(reset|stream-error|session-error|network|closed)/.test(a))
    return true;
  return false;
}

export async function runMalformed(opts: { count: number; concurrency?: number; maxSeconds?: number }): Promise<MalformedResult> {
  const tenantId = "malformed";
  const db = await freshDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  let svc: ChildService | null = null;
  let session: http2.ClientHttp2Session | null = null;
  try {
    svc = await startChildService({
      DATABASE_URL: db.url,
      AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY,
      ELASTICSEARCH_URL: "",
      AUDITLOG_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      AUDITLOG_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    });
    const url = svc.url;
    const port = Number(new URL(url).port);
    const keys = await createTenantWithKeys(url, tenantId);
    const deadline = Date.now() + (opts.maxSeconds ?? 300) * 1000;

    const stats = newStats();
    let stopNew = false;
    const target = { url, ingestKey: keys.ingest, grpcClient: null, generation: 1 };
    const producer = appendProducer("good", tenantId, 20, stats, {
      stopNew: () => stopNew,
      giveUp: () => Date.now() > deadline + 30_000,
      target: () => target,
    });

    const garbageOpen = new Set<net.Socket>();
    const getSession = (): http2.ClientHttp2Session => {
      if (!session || session.closed || session.destroyed) {
        session = http2.connect(url);
        session.on("error", () => {});
      }
      return session;
    };

    const kinds = [
      "grpc-random",
      "grpc-random-ingest",
      "content-type",
      "json-types",
      "grpc-truncated",
      "grpc-huge-declared",
      "json-huge-field",
      "h2-garbage",
      "tcp-garbage",
      "grpcweb-bad-base64",
      "grpcweb-random",
      "grpc-unknown-method",
      "mistake",
    ];

    // Issue 9's client mistakes, each answered INVALID_ARGUMENT (or NOT_FOUND), never INTERNAL.
    const fingerprint = queryFingerprint(tenantId, {
      filter: toJsonString(EventFilterSchema, create(EventFilterSchema)),
      direction: "desc",
    });
    const forged = (occurredAt: string, sequence: string) =>
      Buffer.from(`1|${fingerprint}|${occurredAt}|${sequence}`).toString("base64url");
    const grpcProto = <D extends DescMessage>(path: string, schema: D, init: MessageInitShape<D>, key: string) =>
      h2Call(getSession(), path, "application/grpc", frame(Buffer.from(toBinary(schema, create(schema, init)))), key);
    const json = (procedure: string, body: unknown, key: string) =>
      fetchCall(url, `/${procedure}`, "application/json", JSON.stringify(body), key);
    const search = QueryService.method.searchEvents;
    const mistakes: [string, (j: number) => Promise<string>][] = [
      [
        "grpc-bad-occurred-at",
        (j) => {
          const [seconds, nanos] = BAD_BINARY_TIMES[j % BAD_BINARY_TIMES.length]!;
          return grpcProto(
            APPEND,
            AppendRequestSchema,
            { events: [{ ...GOOD_EVENT, id: `bad-time-${j}`, occurredAt: { seconds, nanos } }] },
            keys.ingest,
          );
        },
      ],
      [
        "json-calendar-occurred-at",
        (j) =>
          json(
            "auditlog.v1.IngestService/Append",
            { events: [{ ...GOOD_EVENT, id: `cal-${j}`, occurredAt: BAD_JSON_TIMES[j % BAD_JSON_TIMES.length] }] },
            keys.ingest,
          ),
      ],
      [
        "json-calendar-filter",
        (j) =>
          json(
            "auditlog.v1.QueryService/SearchEvents",
            { filter: { occurredAfter: BAD_JSON_TIMES[j % BAD_JSON_TIMES.length] } },
            keys.query,
          ),
      ],
      [
        "grpc-filter-time-range",
        (j) => {
          const [seconds, nanos] = BAD_FILTER_TIMES[j % BAD_FILTER_TIMES.length]!;
          return grpcProto(
            grpcPath(QueryService, "SearchEvents"),
            search.input,
            { filter: { occurredBefore: { seconds, nanos } } },
            keys.query,
          );
        },
      ],
      [
        "export-http-calendar",
        (j) => fetchCall(url, `/v1/export?occurred_before=${BAD_JSON_TIMES[j % BAD_JSON_TIMES.length]}`, "", null, keys.query),
      ],
      [
        "grpc-get-event-nul",
        () => grpcProto(grpcPath(QueryService, "GetEvent"), QueryService.method.getEvent.input, { id: "e\u00001" }, keys.query),
      ],
      ["json-get-event-nul", () => json("auditlog.v1.QueryService/GetEvent", { id: "\u0000" }, keys.query)],
      [
        "json-search-nul",
        (j) => json("auditlog.v1.QueryService/SearchEvents", { filter: NUL_FILTERS[j % NUL_FILTERS.length] }, keys.query),
      ],
      ["json-stats-nul", (j) => json("auditlog.v1.QueryService/GetStats", { filter: NUL_FILTERS[j % NUL_FILTERS.length] }, keys.query)],
      [
        "grpc-search-nul",
        (j) =>
          grpcProto(
            grpcPath(QueryService, "SearchEvents"),
            search.input,
            { filter: NUL_FILTERS[j % NUL_FILTERS.length] as never },
            keys.query,
          ),
      ],
      ["export-http-nul", (j) => fetchCall(url, `/v1/export?${NUL_EXPORT_PARAMS[j % NUL_EXPORT_PARAMS.length]}`, "", null, keys.query)],
      [
        "admin-nul",
        (j) => {
          const calls: [string, unknown][] = [
            ["CreateTenant", { id: "nul-tenant", name: "n\u0000" }],
            ["CreateApiKey", { tenantId: "mal\u0000formed", name: "k", scopes: ["SCOPE_QUERY"] }],
            ["CreateApiKey", { tenantId: tenantId, name: "k\u0000", scopes: ["SCOPE_QUERY"] }],
            ["ListApiKeys", { tenantId: "mal\u0000formed" }],
            ["RotateApiKey", { keyId: "k\u0000" }],
            ["RevokeApiKey", { keyId: "k\u0000" }],
          ];
          const [method, body] = calls[j % calls.length]!;
          return json(`${AdminService.typeName}/${method}`, body, BOOTSTRAP_KEY);
        },
      ],
      [
        "verify-chain-past-bigint",
        (j) =>
          j % 2
            ? json("auditlog.v1.QueryService/VerifyChain", { fromSequence: "18446744073709551615" }, keys.query)
            : grpcProto(
                grpcPath(QueryService, "VerifyChain"),
                QueryService.method.verifyChain.input,
                { fromSequence: 2n ** 63n },
                keys.query,
              ),
      ],
      [
        "forged-page-token",
        (j) => {
          const tokens = [
            forged("99999999999999999999999999", "1"),
            forged("-1", "1"),
            forged("1700000000000000", "99999999999999999999"),
            forged("1700000000000000", "0"),
          ];
          return json("auditlog.v1.QueryService/SearchEvents", { pageSize: 1, pageToken: tokens[j % tokens.length] }, keys.query);
        },
      ],
      [
        "connect-proto-garbage",
        (j) => fetchCall(url, APPEND, "application/proto", Buffer.concat([Buffer.alloc(10, 0xff), randomBytes(1 + (j % 50))]), keys.ingest),
      ],
    ];
    const one = async (i: number): Promise<Outcome> => {
      const kind = kinds[i % kinds.length]!;
      const key = keys.ingest;
      switch (kind) {
        case "grpc-random":
          return { kind, answer: await h2Call(getSession(), APPEND, "application/grpc", frame(randomBytes(1 + (i % 300))), key) };
        case "grpc-random-ingest": {
          const body = Buffer.concat([frame(randomBytes(1 + (i % 50))), frame(randomBytes(1 + (i % 120)))]);
          return { kind, answer: await h2Call(getSession(), INGEST, "application/grpc+proto", body, key) };
        }
        case "content-type": {
          const types = [
            "text/plain",
            "application/xml",
            "application/x-www-form-urlencoded",
            "image/png",
            "application/grpc+json5",
            "application/jsonx",
          ];
          return { kind, answer: await fetchCall(url, APPEND, types[i % types.length]!, `{"events": []}`, key) };
        }
        case "json-types":
          return { kind, answer: await fetchCall(url, APPEND, "application/json", JSON_BODIES[i % JSON_BODIES.length]!, key) };
        case "grpc-truncated": {
          const payload = randomBytes(1 + (i % 40));
          const body = frame(payload, payload.length + 1 + (i % 1000)).subarray(0, 5 + payload.length);
          // Sometimes even the 5-byte prefix is cut.
          const cut = i % 3 === 0 ? body.subarray(0, 1 + (i % 4)) : body;
          return { kind, answer: await h2Call(getSession(), APPEND, "application/grpc", cut, key) };
        }
        case "grpc-huge-declared":
          // Declares 100 MiB (over the 8 MiB limit) and sends a little.
          return { kind, answer: await h2Call(getSession(), APPEND, "application/grpc", frame(randomBytes(16), 100 * 1024 * 1024), key) };
        case "json-huge-field": {
          // Mostly one oversized event (over the 64 KiB event limit); every 50th a message over the 8 MiB request limit.
          const size = i % 50 === 6 ? 9 * 1024 * 1024 : 70 * 1024;
          const body = JSON.stringify({
            events: [
              {
                id: `huge-${i}`,
                occurredAt: "2026-11-01T00:00:00Z",
                action: "a.b",
                actor: { id: "u", type: "ACTOR_TYPE_USER" },
                message: "x".repeat(size),
              },
            ],
          });
          return { kind, answer: await fetchCall(url, APPEND, "application/json", body, key) };
        }
        case "h2-garbage":
          return { kind, answer: await rawGarbage(port, Buffer.concat([PREFACE, randomBytes(9 + (i % 200))]), garbageOpen) };
        case "tcp-garbage":
          return { kind, answer: await rawGarbage(port, randomBytes(1 + (i % 200)), garbageOpen) };
        case "grpcweb-bad-base64":
          return {
            kind,
            answer: await fetchCall(url, APPEND, "application/grpc-web-text", "@@not*base64!!" + randomBytes(8).toString("hex"), key),
          };
        case "grpcweb-random":
          return { kind, answer: await fetchCall(url, APPEND, "application/grpc-web+proto", frame(randomBytes(1 + (i % 200))), key) };
        case "mistake": {
          const j = Math.floor(i / kinds.length);
          const [name, send] = mistakes[j % mistakes.length]!;
          return { kind: `mistake-${name}`, answer: await send(Math.floor(j / mistakes.length)) };
        }
        default:
          return {
            kind,
            answer: await h2Call(getSession(), "/auditlog.v1.IngestService/NoSuchMethod", "application/grpc", frame(Buffer.alloc(0)), key),
          };
      }
    };

    const distribution = new Map<string, number>();
    const forbidden = new Map<string, number>();
    const samples = new Map<string, string>();
    const mistakesMisanswered = new Map<string, number>();
    let mistakesSent = 0;
    let nextIndex = 0;
    let done = 0;
    const worker = async () => {
      while (nextIndex < opts.count && Date.now() < deadline) {
        const i = nextIndex++;
        const raw = await one(i);
        const [answer, message = ""] = raw.answer.split("\u0000");
        const o = { kind: raw.kind, answer: answer! };
        done++;
        const key = `${o.kind} ${o.answer}`;
        distribution.set(key, (distribution.get(key) ?? 0) + 1);
        if (o.kind.startsWith("mistake-")) {
          mistakesSent++;
          if (!isMistakeAnswered(o.answer)) {
            mistakesMisanswered.set(key, (mistakesMisanswered.get(key) ?? 0) + 1);
            if (!samples.has(key)) samples.set(key, message.slice(0, 300));
          }
        }
        if (isForbidden(o)) {
          forbidden.set(key, (forbidden.get(key) ?? 0) + 1);
          if (!samples.has(key)) samples.set(key, message.slice(0, 300));
        }
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency ?? 16 }, worker));
    stopNew = true;
    await producer;
    (session as http2.ClientHttp2Session | null)?.close();
    // Every garbage connection still open must be closed by the server within its timeouts.
    const openBound = Date.now() + HEADERS_TIMEOUT_MS + IDLE_TIMEOUT_MS + 10_000;
    while (garbageOpen.size > 0 && Date.now() < openBound) await sleep(100);
    const garbageLeftOpen = garbageOpen.size;
    for (const sock of garbageOpen) sock.destroy();

    const serverAlive = svc.proc.exitCode === null && svc.proc.signalCode === null;
    // Still serving after all that.
    const after = await fetch(`${url}/healthz`)
      .then((r) => r.status)
      .catch(() => 0);
    const s = await storedStats(pool, tenantId, stats.acked);
    const report: FaultReport = {
      fault: "malformed",
      sent: stats.sent.size,
      acknowledged: stats.acked.size,
      stored: s.stored,
      duplicated: s.duplicated,
      lost: s.lost,
    };
    const dist = Object.fromEntries([...distribution].sort());
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    printReport(
      report,
      `bad_requests=${done} garbage_left_open=${garbageLeftOpen} forbidden=${sum(forbidden)} client_mistakes=${mistakesSent} internal_for_client_mistakes=${[...forbidden].filter(([k]) => k.startsWith("mistake-")).reduce((a, [, v]) => a + v, 0)} mistakes_not_invalid_argument=${sum(mistakesMisanswered)}`,
    );
    const lines = Object.entries(dist).map(
      ([k, v]) =>
        `  ${k}: ${v}${samples.has(k) ? `  ${forbidden.has(k) ? "FORBIDDEN" : "NOT INVALID_ARGUMENT"}, e.g. message ${JSON.stringify(samples.get(k))}` : ""}`,
    );
    console.log(`malformed answers:\n${lines.join("\n")}`);
    process.stderr.write(`malformed answers:\n${lines.join("\n")}\n`);
    return {
      ...report,
      badRequests: done,
      distribution: dist,
      forbidden: Object.fromEntries(forbidden),
      samples: Object.fromEntries(samples),
      serverAlive: serverAlive && after === 200,
      producerCodes: Object.fromEntries(stats.codes),
      anomalies: stats.anomalies,
      mistakesSent,
      mistakesMisanswered: Object.fromEntries(mistakesMisanswered),
      garbageLeftOpen,
    };
  } finally {
    (session as http2.ClientHttp2Session | null)?.destroy();
    await sleep(0);
    await (svc as ChildService | null)?.kill("SIGKILL");
    await pool.end();
    await db.drop();
  }
}
