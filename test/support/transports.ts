// One spec, three wire protocols. The service answers gRPC (HTTP/2),
// gRPC-Web and Connect on one port, and each protocol carries status codes,
// metadata and streams its own way; a behaviour that holds on one should be
// checked on all three with the same typed client code:
//
//   forEachTransport((t) => {
//     it("echoes", async () => {
//       const client = createClient(EchoService, t.transport(server.url));
//       ...
//     });
//   });
//
//   forEachServiceTransport((s) => {            // the real service, in-process
//     it("appends", async () => {
//       const { ingest } = s.clients(s.tenant.ingest);
//       ...
//     });
//   });
import { randomBytes } from "node:crypto";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe } from "vitest";
import { AdminService } from "../../gen/auditlog/v1/admin_pb.js";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";

export type TransportCase = {
  name: "gRPC" | "gRPC-Web" | "Connect";
  /** As the access log names it. */
  protocol: "grpc" | "grpc-web" | "connect";
  /**
   * What the transport speaks: gRPC needs HTTP/2; gRPC-Web and Connect run
   * over HTTP/1.1, as browsers, curl and fetch() use them.
   */
  httpVersion: "2" | "1.1";
  /** connect-node sends client streams only over HTTP/2. */
  clientStreams: boolean;
  transport(baseUrl: string, interceptors?: Interceptor[]): Transport;
};

export const TRANSPORTS: readonly TransportCase[] = [
  {
    name: "gRPC",
    protocol: "grpc",
    httpVersion: "2",
    clientStreams: true,
    transport: (baseUrl, interceptors = []) => createGrpcTransport({ baseUrl, interceptors }),
  },
  {
    name: "gRPC-Web",
    protocol: "grpc-web",
    httpVersion: "1.1",
    clientStreams: false,
    transport: (baseUrl, interceptors = []) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors }),
  },
  {
    name: "Connect",
    protocol: "connect",
    httpVersion: "1.1",
    clientStreams: false,
    transport: (baseUrl, interceptors = []) => createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors }),
  },
];

/** Declares `spec` once per protocol, each in a describe block "over <protocol>". */
export function forEachTransport(spec: (t: TransportCase) => void): void {
  for (const t of TRANSPORTS) describe(`over ${t.name}`, () => spec(t));
}

export type ServiceClients = {
  ingest: Client<typeof IngestService>;
  query: Client<typeof QueryService>;
  admin: Client<typeof AdminService>;
};

export function serviceClients(transport: Transport): ServiceClients {
  return {
    ingest: createClient(IngestService, transport),
    query: createClient(QueryService, transport),
    admin: createClient(AdminService, transport),
  };
}

/** Sends `Authorization: Bearer <secret>` on every call. */
export function bearerInterceptor(secret: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${secret}`);
    return next(req);
  };
}

export type ServiceUnderTest = {
  t: TransportCase;
  url: string;
  /** AUDITLOG_BOOTSTRAP_KEY of the service. */
  operatorKey: string;
  /** A tenant of this file's own, with a key per scope and one with all. */
  tenant: { tenantId: string; ingest: string; query: string; admin: string; all: string };
  /** Typed clients over this protocol, sending `secret` as the bearer key (none without). */
  clients(secret?: string): ServiceClients;
};

/**
 * Starts the whole service in-process once (test/support/service.ts: fresh
 * database, PostgreSQL search unless `env` says otherwise), makes a tenant
 * with keys through AdminService, and declares `spec` once per protocol
 * against it. The fields of the spec's argument are set by the time tests
 * and hooks run, not while `spec` declares them.
 */
export function forEachServiceTransport(spec: (s: ServiceUnderTest) => void, env: Record<string, string> = {}): void {
  // Imported on first use, so that unit tests can use the rest of this module
  // without the integration setup that service.ts needs (inject()).
  let service: { url: string; stop(): Promise<void> } | undefined;
  let operatorKey = "";
  let tenant: ServiceUnderTest["tenant"] | undefined;
  beforeAll(async () => {
    const { BOOTSTRAP_KEY, createTenantWithKeys, startTestService } = await import("./service.ts");
    service = await startTestService(env);
    operatorKey = BOOTSTRAP_KEY;
    tenant = await createTenantWithKeys(service.url, `transports-${randomBytes(4).toString("hex")}`);
  });
  afterAll(async () => {
    await service?.stop();
  });
  for (const t of TRANSPORTS) {
    describe(`over ${t.name}`, () =>
      spec({
        t,
        get url() {
          return service!.url;
        },
        get operatorKey() {
          return operatorKey;
        },
        get tenant() {
          return tenant!;
        },
        clients: (secret) => serviceClients(t.transport(service!.url, secret ? [bearerInterceptor(secret)] : [])),
      }));
  }
}
