// An NDJSON export from PostgreSQL reads later pages into the buffers of
// pages its consumer is done with (src/search/postgres/page-buffers.ts).
// That is safe only because each transport is done with a chunk when it asks
// for the next: the RPCs encode it into its message first, the HTTP download
// waits for its write to complete. Here: an export of several pages (2,000
// events each) through the whole service, over every protocol and over
// HTTP/1.1 and HTTP/2 downloads read slowly (so that writes queue), byte for
// byte what the record path writes.
import http from "node:http";
import http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueryService, SortOrder } from "../../gen/auditlog/v1/query_pb.js";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { pgExport } from "../../src/search/postgres/export.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";
import { bearerInterceptor, TRANSPORTS } from "../support/transports.ts";

// Five pages of 2,000 (PG_EXPORT_BATCH) and a part of one: buffers come round again.
const EVENTS = 10_500;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The body of a download read in small bites with pauses, so the service's writes queue behind a slow reader. */
async function readSlowly(body: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    parts.push(c);
    if (++n % 8 === 0) await pause(2);
  }
  return Buffer.concat(parts).toString("utf8");
}

describe("NDJSON export with reused page buffers, through the service", () => {
  let svc: TestService;
  let keys: TenantKeys;
  let expected: string;

  beforeAll(async () => {
    svc = await startTestService();
    keys = await createTenantWithKeys(svc.url, "reuse");
    for (let i = 0; i < EVENTS; i += 500) {
      const events = Array.from({ length: Math.min(500, EVENTS - i) }, (_, k) => toConnectJson(makeEvent(i + k, "reuse")));
      const r = await connectCall(svc.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);
      expect(r.status).toBe(200);
    }
    const pool = new pg.Pool({ connectionString: svc.databaseUrl, max: 1 });
    try {
      expected = "";
      for await (const batch of pgExport(pool, "reuse", { conditions: [] }, "asc", null, new AbortController().signal)) {
        for (const r of batch) expected += ndjsonLineOfRecord(r);
      }
    } finally {
      await pool.end();
    }
    expect(expected.split("\n")).toHaveLength(EVENTS + 1);
  }, 120_000);

  afterAll(async () => {
    await svc?.stop();
  });

  for (const t of TRANSPORTS) {
    it(`ExportEvents over ${t.name}`, async () => {
      const query = createClient(QueryService, t.transport(svc.url, [bearerInterceptor(keys.query)]));
      const parts: Uint8Array[] = [];
      let n = 0;
      for await (const m of query.exportEvents({ order: SortOrder.ASCENDING })) {
        parts.push(m.chunk);
        if (++n % 8 === 0) await pause(2);
      }
      expect(Buffer.concat(parts).toString("utf8")).toBe(expected);
    });
  }

  it("GET /v1/export over HTTP/1.1, read slowly", async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(`${svc.url}/v1/export?order=asc`, { headers: { authorization: `Bearer ${keys.query}` } }, resolve).on("error", reject);
    });
    expect(res.statusCode).toBe(200);
    expect(await readSlowly(res)).toBe(expected);
  });

  it("GET /v1/export over HTTP/2, read slowly", async () => {
    const session = http2.connect(svc.url);
    try {
      const stream = session.request({ ":path": "/v1/export?order=asc", authorization: `Bearer ${keys.query}` });
      const [headers] = await new Promise<[http2.IncomingHttpHeaders]>((resolve, reject) => {
        stream.once("response", (h) => resolve([h]));
        stream.once("error", reject);
      });
      expect(headers[":status"]).toBe(200);
      expect(await readSlowly(stream)).toBe(expected);
    } finally {
      session.close();
    }
  });
});
