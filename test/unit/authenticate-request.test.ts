// One authentication for the RPCs and GET /v1/export: the same answers for a
// missing or bad key, a missing scope, and a key store that cannot be reached
// (UNAVAILABLE / 503, never INTERNAL / 500: the key may be fine, retry).
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { Authenticator } from "../../src/auth/authenticator.ts";
import { createLogger } from "../../src/platform/log.ts";
import { exportHttpHandler } from "../../src/services/export-http.ts";
import type { ApiKeyStore } from "../../src/store/api-key-store.ts";
import { inMemoryService } from "../support/in-memory.ts";
import { minimalEvent } from "./fixtures.ts";

/** What pg reports when nothing listens on PostgreSQL's port. */
function connectionRefused(): Error {
  return Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED", errno: -111, syscall: "connect" });
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );
}

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** GET /v1/export on a plain HTTP server over the in-memory service's key store. */
async function exportUrl(svc: ReturnType<typeof inMemoryService>): Promise<string> {
  const auth = new Authenticator(svc.keys as unknown as ApiKeyStore, svc.operatorKey, 60_000);
  const log = createLogger({ level: "error", stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  const handle = exportHttpHandler({ auth, backend: svc.events, validator: createValidator(), log });
  const server = http.createServer((req, res) => void handle(req, res));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/export`;
}

async function get(url: string, key?: string): Promise<{ status: number; body: { code: string; message: string } }> {
  const res = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, body: (await res.json()) as { code: string; message: string } };
}

describe("RPC and GET /v1/export answer alike", () => {
  it("missing or invalid key: UNAUTHENTICATED / 401", async () => {
    const svc = inMemoryService();
    expect((await failure(svc.clients().query.searchEvents({}))).code).toBe(Code.Unauthenticated);
    expect((await failure(svc.clients("alk_000000000000_nope").query.searchEvents({}))).code).toBe(Code.Unauthenticated);
    const url = await exportUrl(svc);
    expect(await get(url)).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
    expect(await get(url, "alk_000000000000_nope")).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
  });

  it("a key without the query scope: PERMISSION_DENIED / 403", async () => {
    const svc = inMemoryService();
    const ingestOnly = await svc.tenantKey("acme", ["SCOPE_INGEST"]);
    const rpc = await failure(svc.clients(ingestOnly).query.searchEvents({}));
    expect(rpc.code).toBe(Code.PermissionDenied);
    const res = await get(await exportUrl(svc), ingestOnly);
    expect(res).toMatchObject({ status: 403, body: { code: "permission_denied", message: rpc.rawMessage } });
  });

  it("the key store unreachable while looking the key up: UNAVAILABLE / 503 with retry, never INTERNAL / 500", async () => {
    const svc = inMemoryService();
    const key = await svc.tenantKey("acme", ["SCOPE_INGEST", "SCOPE_QUERY"]);
    svc.keys.failLookups = connectionRefused();
    // A fresh Authenticator per path: nothing cached, the lookup reaches the store.
    const url = await exportUrl(svc);
    for (const call of [
      () => svc.clients(key).query.searchEvents({}),
      () => svc.clients(key).ingest.append({ events: [minimalEvent()] }),
    ]) {
      const err = await failure(call());
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/retry/);
    }
    const res = await get(url, key);
    expect(res.status).toBe(503);
    expect(res.body.code).toBe("unavailable");
    expect(res.body.message).toMatch(/retry/);
    expect(svc.events.batches).toEqual([]);

    svc.keys.failLookups = null;
    expect((await svc.clients(key).query.searchEvents({})).events).toEqual([]);
  });
});
