// Client deadlines are honoured: when the caller's deadline passes, the
// server stops the work, not only the answer. Each read is held up by a
// lock on the events table (taken by the test), so its statement waits in
// PostgreSQL; a Connect client with a short timeoutMs gets DEADLINE_EXCEEDED
// and the statement must leave pg_stat_activity while the lock is still held.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { bearerInterceptor } from "../support/transports.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const DEADLINE_MS = 1_500;

/** The service's read statements waiting for a lock in `database`. */
async function waitingReads(admin: pg.Pool, database: string): Promise<number> {
  const r = await admin.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
      WHERE datname = $1 AND application_name = 'auditlog-read' AND state = 'active' AND wait_event_type = 'Lock'`,
    [database],
  );
  return Number(r.rows[0]!.n);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("client deadlines on the PostgreSQL backend", () => {
  let svc: TestService;
  let keys: TenantKeys;
  let admin: pg.Pool;
  let database: string;

  beforeAll(async () => {
    svc = await startTestService({ AUDITLOG_READ_TIMEOUT_MS: "120000", AUDITLOG_EXPORT_PAGE_TIMEOUT_MS: "120000" });
    expect(svc.backend.name).toBe("postgresql");
    keys = await createTenantWithKeys(svc.url, "acme");
    const r = await connectCall(
      svc.url,
      "auditlog.v1.IngestService/Append",
      { events: [toConnectJson(makeEvent(1, "acme"))] },
      keys.ingest,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    admin = new pg.Pool({ connectionString: svc.databaseUrl, max: 3 });
    database = decodeURIComponent(new URL(svc.databaseUrl).pathname.slice(1));
  }, 120_000);

  afterAll(async () => {
    await admin?.end();
    await svc?.stop();
  });

  const query = () =>
    createClient(
      QueryService,
      createConnectTransport({ baseUrl: svc.url, httpVersion: "1.1", interceptors: [bearerInterceptor(keys.query)] }),
    );

  const calls: [string, (q: ReturnType<typeof query>, timeoutMs: number) => Promise<unknown>][] = [
    ["SearchEvents", (q, timeoutMs) => q.searchEvents({ filter: { query: "anything" }, includeTotal: true }, { timeoutMs })],
    [
      "ExportEvents",
      async (q, timeoutMs) => {
        for await (const _ of q.exportEvents({}, { timeoutMs })) {
          // a chunk would mean the lock did not hold the read up
        }
      },
    ],
    ["GetStats", (q, timeoutMs) => q.getStats({}, { timeoutMs })],
    ["VerifyChain", (q, timeoutMs) => q.verifyChain({}, { timeoutMs })],
    ["GetEvent", (q, timeoutMs) => q.getEvent({ id: "anything" }, { timeoutMs })],
  ];

  for (const [name, call] of calls) {
    it(`${name}: the read's statement stops when the caller's deadline passes`, async () => {
      const locker = await admin.connect();
      try {
        await locker.query("BEGIN");
        await locker.query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
        const started = Date.now();
        const answer = call(query(), DEADLINE_MS).then(
          () => null,
          (err: unknown) => ConnectError.from(err),
        );
        // The statement is there, waiting for the lock...
        await waitFor(`${name} to wait for the lock`, async () => (await waitingReads(admin, database)) > 0, DEADLINE_MS);
        const err = await answer;
        expect(err?.code).toBe(Code.DeadlineExceeded);
        expect(Date.now() - started).toBeLessThan(DEADLINE_MS + 5_000);
        // ...and gone soon after the deadline, although the lock is still held.
        await waitFor(`${name}'s statement to be cancelled`, async () => (await waitingReads(admin, database)) === 0, 5_000);
      } finally {
        await locker.query("ROLLBACK");
        locker.release();
      }
    });
  }
});
