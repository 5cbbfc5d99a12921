// CSV exports neutralise spreadsheet formulas by default (OWASP CSV
// injection) and write cells as stored when asked to, the same over the
// plain HTTP download and the ExportEvents RPC, through the whole service.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { parse as parseCsv } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExportFormat, QueryService, SortOrder } from "../../gen/auditlog/v1/query_pb.js";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const FORMULAS = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "'=quoted"];

type Row = Record<string, string>;
const rowsOf = (csv: string) => parseCsv(csv, { columns: true, record_delimiter: "\r\n" }) as Row[];

describe("CSV export and spreadsheet formulas", () => {
  let svc: TestService;
  let keys: TenantKeys;

  beforeAll(async () => {
    svc = await startTestService();
    keys = await createTenantWithKeys(svc.url, "formulas");
    const events = FORMULAS.map((f, i) => ({
      ...toConnectJson(makeEvent(i, "f")),
      // Actions are dotted lowercase, so only "-" of the list can lead one.
      action: i === 2 ? "-delete.all" : "customer.created",
      message: f,
      metadata: { note: f, [f]: 1 },
    }));
    const r = await connectCall<any>(svc.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  });
  afterAll(() => svc?.stop());

  function expectNeutralised(rows: Row[]): void {
    expect(rows.map((r) => r["message"])).toEqual(FORMULAS.map((f) => `'${f}`));
    expect(rows[2]!["action"]).toBe("'-delete.all");
    expect(rows[0]!["action"]).toBe("customer.created");
    // Open content is JSON text starting with "{": the values inside cannot lead a cell.
    for (const [i, r] of rows.entries()) expect(JSON.parse(r["metadata"]!)).toEqual({ note: FORMULAS[i], [FORMULAS[i]!]: 1 });
  }

  function expectAsStored(rows: Row[]): void {
    expect(rows.map((r) => r["message"])).toEqual(FORMULAS);
    expect(rows[2]!["action"]).toBe("-delete.all");
  }

  const download = async (params: string) => {
    const r = await fetch(`${svc.url}/v1/export?format=csv&order=asc${params}`, { headers: { authorization: `Bearer ${keys.query}` } });
    const text = await r.text();
    expect(r.status, text).toBe(200);
    return text;
  };

  it("over HTTP: neutralised by default, as stored with csv_keep_formulas=true", async () => {
    const safe = await download("");
    expect(safe).toContain(`,"'=1+2",`);
    expectNeutralised(rowsOf(safe));
    expectNeutralised(rowsOf(await download("&csv_keep_formulas=false")));
    expectAsStored(rowsOf(await download("&csv_keep_formulas=true")));
    const bad = await fetch(`${svc.url}/v1/export?format=csv&csv_keep_formulas=yes`, {
      headers: { authorization: `Bearer ${keys.query}` },
    });
    expect(bad.status).toBe(400);
  });

  it("over RPC: neutralised by default, as stored with csv_keep_formulas", async () => {
    const client = createClient(QueryService, createGrpcTransport({ baseUrl: svc.url }));
    const run = async (csvKeepFormulas: boolean) => {
      const parts: Uint8Array[] = [];
      const call = client.exportEvents(
        { format: ExportFormat.CSV, order: SortOrder.ASCENDING, csvKeepFormulas },
        { headers: { authorization: `Bearer ${keys.query}` } },
      );
      for await (const m of call) parts.push(m.chunk);
      return Buffer.concat(parts).toString("utf8");
    };
    expectNeutralised(rowsOf(await run(false)));
    expectAsStored(rowsOf(await run(true)));
  });

  it("never alters NDJSON", async () => {
    const r = await fetch(`${svc.url}/v1/export?order=asc`, { headers: { authorization: `Bearer ${keys.query}` } });
    const lines = (await r.text()).trimEnd().split("\n");
    expect(lines.map((l) => JSON.parse(l).event.message)).toEqual(FORMULAS);
  });
});
