// Done-criteria of the foundation: a polyglot producer (grpc-js, stubs from
// our .proto files) streams events into Ingest; every one comes back by
// paging SearchEvents over Connect JSON; a resend stores nothing; a changed
// event under a used id is a conflict.
import type * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson, toProtoLoader } from "../support/events.ts";
import { bearer, loadAuditlogStubs, newClient } from "../../scripts/lib/grpc-client.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const TOTAL = Number(process.env.AUDITLOG_TEST_STREAM_EVENTS ?? 100_000);
const PER_MESSAGE = 500;

type Summary = {
  accepted: string;
  duplicates: string;
  rejected: string;
  conflicts: string;
  position: string;
  results: { index: number; id: string; status: string; field: string; reason: string }[];
};

function ingestAll(client: grpc.Client & Record<string, any>, secret: string, events: Record<string, unknown>[]): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const call = client.Ingest(bearer(secret), (err: grpc.ServiceError | null, res: { summary: Summary }) =>
      err ? reject(err) : resolve(res.summary),
    );
    let i = 0;
    // Respect the stream's flow control: write until the buffer is full, resume on drain.
    const pump = () => {
      while (i < events.length) {
        const ok = call.write({ events: events.slice(i, i + PER_MESSAGE) });
        i += PER_MESSAGE;
        if (!ok) return void call.once("drain", pump);
      }
      call.end();
    };
    pump();
  });
}

describe("Ingest over gRPC (grpc-js client) and SearchEvents over Connect JSON", () => {
  let svc: TestService;
  let keys: TenantKeys;
  let client: grpc.Client & Record<string, any>;
  const events = Array.from({ length: TOTAL }, (_, i) => makeEvent(i, "stream"));

  beforeAll(async () => {
    svc = await startTestService();
    keys = await createTenantWithKeys(svc.url, "stream-tenant");
    const stubs = loadAuditlogStubs();
    client = newClient(stubs.IngestService, svc.url);
  });
  afterAll(async () => {
    client?.close();
    await svc?.stop();
  });

  it(`acknowledges all ${TOTAL} events of one client stream`, async () => {
    const started = performance.now();
    const summary = await ingestAll(client, keys.ingest, events.map(toProtoLoader));
    const seconds = (performance.now() - started) / 1000;
    console.log(`ingest: ${TOTAL} events over one stream in ${seconds.toFixed(2)} s = ${Math.round(TOTAL / seconds)} events/s`);
    expect(summary.accepted).toBe(String(TOTAL));
    expect(summary.duplicates).toBe("0");
    expect(summary.rejected).toBe("0");
    expect(summary.results).toEqual([]);
    expect(summary.position).toBe(String(TOTAL));
  });

  it("returns every event, once and in order, by paging SearchEvents", async () => {
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const r = await connectCall<{
        events?: { event: { id: string; occurredAt: string }; sequence: string }[];
        nextPageToken?: string;
        total?: string;
      }>(
        svc.url,
        "auditlog.v1.QueryService/SearchEvents",
        { order: "SORT_ORDER_ASCENDING", pageSize: 1000, pageToken, includeTotal: pages === 0 },
        keys.query,
      );
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      if (pages === 0) expect(r.body.total).toBe(String(TOTAL));
      for (const e of r.body.events ?? []) seen.push(e.event.id);
      pageToken = r.body.nextPageToken ?? "";
      pages++;
    } while (pageToken);
    expect(seen.length).toBe(TOTAL);
    // makeEvent spaces occurred_at by a second in index order, so ascending order is index order.
    expect(seen).toEqual(events.map((e) => e.id));
  });

  it("stores nothing when the same events are sent again: all duplicates", async () => {
    const summary = await ingestAll(client, keys.ingest, events.map(toProtoLoader));
    expect(summary.accepted).toBe("0");
    expect(summary.duplicates).toBe(String(TOTAL));
    expect(summary.results.length).toBe(TOTAL);
    expect(summary.results[0]).toMatchObject({ index: 0, id: events[0]!.id, status: "EVENT_STATUS_DUPLICATE" });
    const count = await svc.pool.query("SELECT count(*)::int AS n FROM events");
    expect(count.rows[0].n).toBe(TOTAL);
  });

  it("refuses a changed event under a used id as a conflict and keeps the stored one", async () => {
    const changed = { ...events[7]!, message: "tampered retry" };
    const r = await connectCall(svc.url, "auditlog.v1.IngestService/Append", { events: [toConnectJson(changed)] }, keys.ingest);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe("already_exists");
    expect(r.body.message).toContain(events[7]!.id);
    const got = await connectCall<{ event: { event: { message: string } } }>(
      svc.url,
      "auditlog.v1.QueryService/GetEvent",
      { id: events[7]!.id },
      keys.query,
    );
    expect(got.body.event.event.message).toBe(events[7]!.message);

    // In a mixed batch the conflict is reported per event and the rest is stored.
    const mixed = await connectCall<{ summary: Summary }>(
      svc.url,
      "auditlog.v1.IngestService/Append",
      { events: [toConnectJson(changed), toConnectJson(makeEvent(1, "fresh"))] },
      keys.ingest,
    );
    expect(mixed.status).toBe(200);
    expect(mixed.body.summary).toMatchObject({ accepted: "1", conflicts: "1" });
    expect(mixed.body.summary.results).toEqual([expect.objectContaining({ index: 0, id: events[7]!.id, status: "EVENT_STATUS_CONFLICT" })]);
  });
});
