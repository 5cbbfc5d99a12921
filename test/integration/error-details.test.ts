// Errors carry the standard google.rpc details on every protocol, so that
// clients read the bad field, the conflicting id or the retry delay without
// parsing message text: decoded here by connect-es clients (gRPC, gRPC-Web,
// Connect: ConnectError.findDetails), by grpc-js from the
// `grpc-status-details-bin` trailer as a google.rpc.Status, and by buf curl.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { anyUnpack, durationMs } from "@bufbuild/protobuf/wkt";
import { fromBinary } from "@bufbuild/protobuf";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport as createWebConnectTransport } from "@connectrpc/connect-web";
import type * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { bearer, loadAuditlogStubs, newClient } from "../../scripts/lib/grpc-client.ts";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";
import { bearerInterceptor, forEachServiceTransport } from "../support/transports.ts";

const BUF = join(import.meta.dirname, "..", "..", "node_modules", ".bin", "buf");
const run = promisify(execFile);

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => null,
    (e: unknown) => ConnectError.from(e),
  );
  if (!err) throw new Error("the call succeeded; expected an error");
  return err;
}

const event = (id: string, over: Record<string, unknown> = {}) => ({
  id,
  occurredAt: { seconds: 1_714_979_289n },
  action: "customer.created",
  actor: { id: "user-1" },
  ...over,
});

describe("error details", () => {
  forEachServiceTransport((s) => {
    const id = (name: string) => `details-${s.t.protocol}-${name}`;

    it("a rejected Append names each bad field of each event (google.rpc.BadRequest)", async () => {
      const { ingest } = s.clients(s.tenant.all);
      const err = await refusal(ingest.append({ events: [event(id("bad-1"), { action: "" }), event(id("bad-2"), { actor: { id: "" } })] }));
      expect(err.code).toBe(Code.InvalidArgument);
      const [bad] = err.findDetails(BadRequestSchema);
      const fields = bad!.fieldViolations.map((v) => v.field);
      expect(fields).toContain("events[0].action");
      expect(fields).toContain("events[1].actor.id");
      for (const v of bad!.fieldViolations) expect(v.description).not.toBe("");
      // The message still says it all for grpcurl and curl users.
      expect(err.rawMessage).toContain("events[0]");
    });

    it("a query syntax error gives the field and the position (BadRequest, ErrorInfo QUERY_SYNTAX)", async () => {
      const { query } = s.clients(s.tenant.all);
      const err = await refusal(query.searchEvents({ filter: { query: "action:(a OR" } }));
      expect(err.code).toBe(Code.InvalidArgument);
      const [bad] = err.findDetails(BadRequestSchema);
      expect(bad!.fieldViolations[0]!.field).toBe("filter.query");
      expect(bad!.fieldViolations[0]!.description).toMatch(/at position \d+/);
      const [info] = err.findDetails(ErrorInfoSchema);
      expect(info).toMatchObject({ reason: "QUERY_SYNTAX", domain: "auditlog.v1" });
      expect(Number(info!.metadata.position)).toBeGreaterThan(0);
    });

    it("a page size over the limit and a forged page token name their field; protovalidate's violations come too", async () => {
      const { query } = s.clients(s.tenant.all);
      const size = await refusal(query.searchEvents({ pageSize: 5000 }));
      expect(size.code).toBe(Code.InvalidArgument);
      expect(size.findDetails(BadRequestSchema)[0]!.fieldViolations.map((v) => v.field)).toEqual(["page_size"]);
      const [violations] = size.findDetails(ViolationsSchema);
      expect(violations!.violations[0]!.ruleId).toBe("uint32.lte");

      const token = await refusal(query.searchEvents({ pageToken: "not-a-token" }));
      expect(token.code).toBe(Code.InvalidArgument);
      expect(token.findDetails(BadRequestSchema)[0]!.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
    });

    it("an Append whose only event conflicts gives its id and stored sequence (ALREADY_EXISTS, ErrorInfo)", async () => {
      const { ingest } = s.clients(s.tenant.all);
      const stored = await ingest.append({ events: [event(id("conflict"))] });
      const err = await refusal(ingest.append({ events: [event(id("conflict"), { action: "customer.deleted" })] }));
      expect(err.code).toBe(Code.AlreadyExists);
      const [info] = err.findDetails(ErrorInfoSchema);
      expect(info).toMatchObject({
        reason: "EVENT_ID_CONFLICT",
        domain: "auditlog.v1",
        metadata: { id: id("conflict"), sequence: String(stored.summary!.position), index: "0" },
      });
    });

    it("CreateTenant of an existing tenant: ALREADY_EXISTS with ErrorInfo TENANT_EXISTS", async () => {
      const { admin } = s.clients(s.operatorKey);
      const err = await refusal(admin.createTenant({ id: s.tenant.tenantId, name: "again" }));
      expect(err.code).toBe(Code.AlreadyExists);
      expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "TENANT_EXISTS", domain: "auditlog.v1" });
    });
  });

  forEachServiceTransport(
    (s) => {
      const id = (name: string) => `details-${s.t.protocol}-${name}`;

      it("a tenant over its ingest rate is told when to retry (RESOURCE_EXHAUSTED, RetryInfo)", async () => {
        const { ingest } = s.clients(s.tenant.all);
        let err: ConnectError | null = null;
        // Burst 2 at 1 event/s: at most two calls of 2 events fit.
        for (let i = 0; i < 3 && !err; i++) {
          err = await ingest.append({ events: [event(id(`rate-${i}-a`)), event(id(`rate-${i}-b`))] }).then(
            () => null,
            (e: unknown) => ConnectError.from(e),
          );
        }
        expect(err?.code).toBe(Code.ResourceExhausted);
        const [retry] = err!.findDetails(RetryInfoSchema);
        const ms = durationMs(retry!.retryDelay!);
        expect(ms).toBeGreaterThan(0);
        expect(ms).toBeLessThanOrEqual(2_000);
      });
    },
    { AUDITLOG_TENANT_INGEST_RATE: "1", AUDITLOG_TENANT_INGEST_BURST: "2" },
  );

  describe("decoded from the raw trailer and by buf curl", () => {
    let service: TestService;
    let keys: TenantKeys;
    beforeAll(async () => {
      service = await startTestService();
      keys = await createTenantWithKeys(service.url, "details-raw");
    });
    afterAll(async () => {
      await service?.stop();
    });

    it("grpc-js: grpc-status-details-bin is a google.rpc.Status holding the BadRequest", async () => {
      const { IngestService } = loadAuditlogStubs();
      const client = newClient(IngestService, service.url);
      try {
        const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
          client.Append(
            { events: [{ id: "raw-1", occurredAt: { seconds: "1714979289" }, action: "", actor: { id: "u" } }] },
            bearer(keys.ingest),
            (e: grpc.ServiceError | null) => (e ? resolve(e) : reject(new Error("the call succeeded"))),
          ),
        );
        expect(err.code).toBe(3); // INVALID_ARGUMENT
        const [bin] = err.metadata.get("grpc-status-details-bin");
        const status = fromBinary(StatusSchema, bin as Buffer);
        expect(status.code).toBe(3);
        const bad = status.details.map((a) => anyUnpack(a, BadRequestSchema)).find((m) => m !== undefined);
        expect(new Set(bad!.fieldViolations.map((v) => v.field))).toEqual(new Set(["events[0].action"]));
      } finally {
        client.close();
      }
    });

    it("connect-web (what browsers use, here on Node's fetch) decodes them too", async () => {
      const transport = createWebConnectTransport({ baseUrl: service.url, interceptors: [bearerInterceptor(keys.ingest)] });
      const err = await refusal(
        createClient(IngestService, transport).append({ events: [event("web-1", { actor: { id: "u", ip: "not-an-ip" } })] }),
      );
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.findDetails(BadRequestSchema)[0]!.fieldViolations.map((v) => v.field)).toEqual(["events[0].actor.ip"]);
    });

    it("buf curl prints the details, decoded through reflection", { timeout: 30_000 }, async () => {
      const err = await run(BUF, [
        "curl",
        "--protocol",
        "connect",
        "-H",
        `Authorization: Bearer ${keys.query}`,
        "-d",
        JSON.stringify({ filter: { query: "action:(a OR" } }),
        `${service.url}/auditlog.v1.QueryService/SearchEvents`,
      ]).then(
        () => null,
        (e: { stderr: string }) => e,
      );
      expect(err).not.toBeNull();
      const printed = JSON.parse(err!.stderr) as { code: string; details: { type: string; debug?: Record<string, unknown> }[] };
      expect(printed.code).toBe("invalid_argument");
      const bad = printed.details.find((d) => d.type === "google.rpc.BadRequest");
      expect(bad?.debug).toMatchObject({ fieldViolations: [{ field: "filter.query" }] });
      const info = printed.details.find((d) => d.type === "google.rpc.ErrorInfo");
      expect(info?.debug).toMatchObject({ reason: "QUERY_SYNTAX", metadata: { position: expect.any(String) } });
    });
  });
});
