// AdminService handlers in memory (test/support/in-memory.ts): what only the
// operator may do, what a tenant admin key may do to its own tenant, the
// results of CreateTenant and CreateApiKey, and the codes of refusals.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeEach, describe, expect, it } from "vitest";
import { Scope } from "../../gen/auditlog/v1/admin_pb.js";
import { keyIdOf, secretMatches } from "../../src/domain/api-key-secret.ts";
import { inMemoryService, type InMemoryService, type ServiceClients } from "../support/in-memory.ts";
import { minimalEvent } from "./fixtures.ts";

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => ConnectError.from(e),
  );
}

let svc: InMemoryService;
let operator: ServiceClients;

beforeEach(() => {
  svc = inMemoryService();
  operator = svc.clients(svc.operatorKey);
});

describe("CreateTenant / ListTenants (operator only)", () => {
  it("creates a tenant and lists it", async () => {
    const before = Date.now();
    const { tenant } = await operator.admin.createTenant({ id: "acme", name: "Acme Ltd" });
    expect(tenant).toMatchObject({ id: "acme", name: "Acme Ltd" });
    expect(timestampDate(tenant!.createdAt!).getTime()).toBeGreaterThanOrEqual(before - 1000);
    await operator.admin.createTenant({ id: "globex", name: "Globex" });
    expect((await operator.admin.listTenants({})).tenants.map((t) => t.id)).toEqual(["acme", "globex"]);
  });

  it("ALREADY_EXISTS for an existing id, and the first tenant is unchanged", async () => {
    await operator.admin.createTenant({ id: "acme", name: "Acme Ltd" });
    const err = await failure(operator.admin.createTenant({ id: "acme", name: "Impostor" }));
    expect(err.code).toBe(Code.AlreadyExists);
    expect((await operator.admin.listTenants({})).tenants.map((t) => t.name)).toEqual(["Acme Ltd"]);
  });

  it("INVALID_ARGUMENT for an id the contract does not allow", async () => {
    const err = await failure(operator.admin.createTenant({ id: "", name: "x" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^id: /);
    expect(svc.tenants.rows.size).toBe(0);
  });

  it("PERMISSION_DENIED for a tenant admin key; UNAUTHENTICATED without a key or with a wrong one", async () => {
    const tenantAdmin = svc.clients(await svc.tenantKey("acme", ["SCOPE_ADMIN"])).admin;
    expect((await failure(tenantAdmin.createTenant({ id: "other", name: "Other" }))).code).toBe(Code.PermissionDenied);
    expect((await failure(tenantAdmin.listTenants({}))).code).toBe(Code.PermissionDenied);
    expect((await failure(svc.clients().admin.listTenants({}))).code).toBe(Code.Unauthenticated);
    expect((await failure(svc.clients("not-the-operator-key").admin.createTenant({ id: "x", name: "x" }))).code).toBe(Code.Unauthenticated);
    expect([...svc.tenants.rows.keys()]).toEqual(["acme"]);
  });
});

describe("CreateApiKey", () => {
  beforeEach(async () => {
    await operator.admin.createTenant({ id: "acme", name: "Acme" });
    await operator.admin.createTenant({ id: "globex", name: "Globex" });
  });

  it("returns the key and, once, a secret that authenticates as that key", async () => {
    const res = await operator.admin.createApiKey({ tenantId: "acme", name: "producer", scopes: [Scope.INGEST, Scope.QUERY] });
    expect(res.key).toMatchObject({ tenantId: "acme", name: "producer", scopes: [Scope.INGEST, Scope.QUERY] });
    expect(res.key!.revokedAt).toBeUndefined();
    expect(keyIdOf(res.secret)).toBe(res.key!.id);
    // What is stored is the secret's hash.
    expect(secretMatches(res.secret, svc.keys.rows.get(res.key!.id)!.secret_hash)).toBe(true);
    // The secret works, with exactly its scopes.
    const client = svc.clients(res.secret);
    expect((await client.ingest.append({ events: [minimalEvent({ id: "k-1" })] })).summary!.accepted).toBe(1n);
    expect((await failure(client.admin.listApiKeys({}))).code).toBe(Code.PermissionDenied);
  });

  it("needs tenant_id with the operator key (INVALID_ARGUMENT) and an existing tenant (NOT_FOUND)", async () => {
    const noTenant = await failure(operator.admin.createApiKey({ name: "k", scopes: [Scope.INGEST] }));
    expect(noTenant.code).toBe(Code.InvalidArgument);
    expect(noTenant.rawMessage).toMatch(/^tenant_id: /);
    const unknown = await failure(operator.admin.createApiKey({ tenantId: "initech", name: "k", scopes: [Scope.INGEST] }));
    expect(unknown.code).toBe(Code.NotFound);
    expect(svc.keys.rows.size).toBe(0);
  });

  it("INVALID_ARGUMENT without scopes", async () => {
    const err = await failure(operator.admin.createApiKey({ tenantId: "acme", name: "k", scopes: [] }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^scopes: /);
  });

  it("a tenant admin key makes keys for its own tenant only: PERMISSION_DENIED for another", async () => {
    const acmeAdmin = svc.clients(await svc.tenantKey("acme", ["SCOPE_ADMIN"])).admin;
    const own = await acmeAdmin.createApiKey({ name: "reader", scopes: [Scope.QUERY] });
    expect(own.key!.tenantId).toBe("acme");
    const err = await failure(acmeAdmin.createApiKey({ tenantId: "globex", name: "sneaky", scopes: [Scope.QUERY] }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect([...svc.keys.rows.values()].filter((k) => k.tenant_id === "globex")).toEqual([]);
  });

  it("PERMISSION_DENIED for a key without the admin scope", async () => {
    const ingestKey = svc.clients(await svc.tenantKey("acme", ["SCOPE_INGEST"])).admin;
    expect((await failure(ingestKey.createApiKey({ name: "k", scopes: [Scope.INGEST] }))).code).toBe(Code.PermissionDenied);
  });
});

describe("Rotate / Revoke", () => {
  it("a revoked key is UNAUTHENTICATED at once, and another tenant's key is NOT_FOUND", async () => {
    const acmeAdmin = svc.clients(await svc.tenantKey("acme", ["SCOPE_ADMIN"])).admin;
    await operator.admin.createTenant({ id: "globex", name: "Globex" });
    const globexKey = await operator.admin.createApiKey({ tenantId: "globex", name: "g", scopes: [Scope.QUERY] });
    expect((await failure(acmeAdmin.revokeApiKey({ keyId: globexKey.key!.id }))).code).toBe(Code.NotFound);

    const { key, secret } = await acmeAdmin.createApiKey({ name: "short-lived", scopes: [Scope.QUERY] });
    const client = svc.clients(secret).query;
    await client.verifyChain({}); // authenticated, and now cached
    const revoked = await acmeAdmin.revokeApiKey({ keyId: key!.id });
    expect(revoked.key!.revokedAt).toBeDefined();
    expect((await failure(client.verifyChain({}))).code).toBe(Code.Unauthenticated);
    expect((await failure(acmeAdmin.rotateApiKey({ keyId: key!.id }))).code).toBe(Code.FailedPrecondition);
  });

  it("rotation gives a new secret; the old one stops working", async () => {
    const acmeAdmin = svc.clients(await svc.tenantKey("acme", ["SCOPE_ADMIN"])).admin;
    const { key, secret } = await acmeAdmin.createApiKey({ name: "rotating", scopes: [Scope.QUERY] });
    await svc.clients(secret).query.verifyChain({});
    const rotated = await acmeAdmin.rotateApiKey({ keyId: key!.id });
    expect(rotated.secret).not.toBe(secret);
    expect(rotated.key!.rotatedAt).toBeDefined();
    expect((await failure(svc.clients(secret).query.verifyChain({}))).code).toBe(Code.Unauthenticated);
    expect((await svc.clients(rotated.secret).query.verifyChain({})).ok).toBe(true);
  });
});
