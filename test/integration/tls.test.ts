// TLS on the one port (AUDITLOG_TLS_CERT_FILE / AUDITLOG_TLS_KEY_FILE): gRPC
// over HTTP/2 and gRPC-Web and Connect over HTTP/1.1 and HTTP/2, chosen by
// ALPN, with independent clients (grpc-js, connect-node, curl) that trust
// only the test's own CA.
import { execFile } from "node:child_process";
import * as net from "node:net";
import { promisify } from "node:util";
import * as tls from "node:tls";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, Scope } from "../../gen/auditlog/v1/admin_pb.js";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { bearer, grpcTarget, loadAuditlogStubs, type GrpcStub } from "../../scripts/lib/grpc-client.ts";
import { makeEvent, toProtoLoader } from "../support/events.ts";
import { BOOTSTRAP_KEY, startTestService, type TestService } from "../support/service.ts";
import { makeTestCertificate, type TestCertificate } from "../support/tls-certs.ts";

const run = promisify(execFile);
const HEADERS_TIMEOUT_MS = 1000;

let cert: TestCertificate;
let service: TestService;
let tenant: { tenantId: string; ingest: string; query: string; all: string };
let url: string;

beforeAll(async () => {
  cert = makeTestCertificate();
  service = await startTestService({
    AUDITLOG_TLS_CERT_FILE: cert.certFile,
    AUDITLOG_TLS_KEY_FILE: cert.keyFile,
    AUDITLOG_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
  });
  // The certificate names localhost; the service reports its bound address.
  url = service.url.replace("127.0.0.1", "localhost");
  // Set up over TLS too (fetch() would not trust the test CA).
  const admin = createClient(AdminService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { ca: cert.cert } }));
  const headers = { authorization: `Bearer ${BOOTSTRAP_KEY}` };
  const tenantId = `tls-${Date.now()}`;
  await admin.createTenant({ id: tenantId, name: tenantId }, { headers });
  const key = async (scopes: Scope[]) => (await admin.createApiKey({ tenantId, name: "tls", scopes }, { headers })).secret;
  tenant = {
    tenantId,
    ingest: await key([Scope.INGEST]),
    query: await key([Scope.QUERY]),
    all: await key([Scope.INGEST, Scope.QUERY]),
  };
}, 60_000);

afterAll(async () => {
  await service?.stop();
  cert?.remove();
});

describe("TLS on the service port", () => {
  it("reports an https URL", () => {
    expect(service.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  const transports: [string, (ca: Buffer) => Transport][] = [
    ["gRPC over h2", (ca) => createGrpcTransport({ baseUrl: url, nodeOptions: { ca } })],
    ["gRPC-Web over HTTP/1.1", (ca) => createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { ca } })],
    ["gRPC-Web over h2", (ca) => createGrpcWebTransport({ baseUrl: url, httpVersion: "2", nodeOptions: { ca } })],
    ["Connect over HTTP/1.1", (ca) => createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { ca } })],
    ["Connect over h2", (ca) => createConnectTransport({ baseUrl: url, httpVersion: "2", nodeOptions: { ca } })],
  ];
  for (const [name, make] of transports) {
    it(`serves ${name} (connect-node): append, then read it back`, async () => {
      const transport = make(cert.cert);
      const headers = { authorization: `Bearer ${tenant.all}` };
      const id = `tls-${name.replace(/\W+/g, "-")}`;
      const event = { id, occurredAt: { seconds: 1_796_000_000n }, action: "tls.checked", actor: { id: "user-1" } };
      const ingest = createClient(IngestService, transport);
      const query = createClient(QueryService, transport);
      const appended = await ingest.append({ events: [event] }, { headers });
      expect(appended.summary?.accepted).toBe(1n);
      const got = await query.getEvent({ id }, { headers });
      expect(got.event?.event?.action).toBe("tls.checked");
    });
  }

  it("refuses a client that does not trust the certificate", async () => {
    const transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
    const err = await createClient(AdminService, transport)
      .listTenants({}, { headers: { authorization: `Bearer ${BOOTSTRAP_KEY}` } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    // connect-node reports a failed TLS handshake as INTERNAL (it is not a retryable network failure).
    expect([Code.Unavailable, Code.Internal]).toContain((err as ConnectError).code);
    expect((err as ConnectError).message).toMatch(/self[- ]signed certificate/);
  });

  it("serves grpc-js with credentials.createSsl and the test CA", async () => {
    const stubs = loadAuditlogStubs();
    const creds = grpc.credentials.createSsl(cert.cert);
    const ingest = new stubs.IngestService(grpcTarget(url), creds) as GrpcStub;
    const query = new stubs.QueryService(grpcTarget(url), creds) as GrpcStub;
    try {
      const event = toProtoLoader(makeEvent(2, "tls-grpcjs"));
      const appended = await new Promise<{ summary: { accepted: string } }>((resolve, reject) =>
        ingest.Append({ events: [event] }, bearer(tenant.ingest), (err: Error | null, res: never) => (err ? reject(err) : resolve(res))),
      );
      expect(appended.summary.accepted).toBe("1");
      const got = await new Promise<{ event: { event: { id: string } } }>((resolve, reject) =>
        query.GetEvent({ id: event.id }, bearer(tenant.query), (err: Error | null, res: never) => (err ? reject(err) : resolve(res))),
      );
      expect(got.event.event.id).toBe(event.id);
    } finally {
      ingest.close();
      query.close();
    }
  });

  it.each([
    ["--http1.1", "1.1"],
    ["--http2", "2"],
  ])("serves curl %s --cacert (Connect JSON)", async (flag, version) => {
    const { stdout } = await run("curl", [
      "-sS",
      flag,
      "--cacert",
      cert.certFile,
      "-H",
      `Authorization: Bearer ${BOOTSTRAP_KEY}`,
      "-H",
      "Content-Type: application/json",
      "-d",
      "{}",
      "-w",
      "\n%{http_version} %{http_code}",
      `${url}/auditlog.v1.AdminService/ListTenants`,
    ]);
    const [body, status] = stdout.split("\n");
    expect(status).toBe(`${version} 200`);
    expect(JSON.stringify(JSON.parse(body!))).toContain(tenant.tenantId);
  });

  it("negotiates h2 and http/1.1 by ALPN and falls back to HTTP/1.1 without ALPN", async () => {
    const port = new URL(url).port;
    for (const [offer, expected] of [
      [["h2"], "h2"],
      [["http/1.1"], "http/1.1"],
      [undefined, false],
    ] as const) {
      const socket = tls.connect({ host: "localhost", port: Number(port), ca: cert.cert, ALPNProtocols: offer ? [...offer] : undefined });
      await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
      expect(socket.alpnProtocol).toBe(expected);
      if (offer === undefined) {
        socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        const text = await new Promise<string>((resolve) => {
          let all = "";
          socket.on("data", (d: Buffer) => (all += d.toString()));
          socket.on("end", () => resolve(all));
        });
        expect(text.startsWith("HTTP/1.1 200")).toBe(true);
      }
      socket.destroy();
    }
  });

  it("speaks no cleartext on the TLS port", async () => {
    const port = Number(new URL(url).port);
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const got = await new Promise<string>((resolve) => {
      let all = "";
      socket.on("data", (d: Buffer) => (all += d.toString("latin1")));
      socket.on("close", () => resolve(all));
      socket.on("error", () => resolve(all));
    });
    expect(got).not.toContain("HTTP/1.1 200");
  });

  it(
    "closes a connection that never starts its handshake (AUDITLOG_HEADERS_TIMEOUT_MS)",
    async () => {
      const socket = net.connect({ host: "127.0.0.1", port: Number(new URL(url).port) });
      await new Promise<void>((resolve) => socket.once("connect", resolve));
      await new Promise<void>((resolve) => socket.once("close", () => resolve()).on("error", () => {}));
      expect(socket.destroyed).toBe(true);
    },
    10 * HEADERS_TIMEOUT_MS,
  );
});
