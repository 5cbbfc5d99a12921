// The negative cache of unknown API key ids against the real service and
// PostgreSQL: a key whose id was tried (and failed) before it existed works
// at once on the replica that created it, and within AUDITLOG_KEY_CACHE_MS on
// another one. Key ids are random and chosen by the server, so the id
// generator is steered here to create that situation on purpose.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Authenticator } from "../../src/auth/authenticator.ts";
import { ApiKeyStore } from "../../src/store/api-key-store.ts";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { BOOTSTRAP_KEY, createTenantWithKeys, startTestService, type TestService } from "../support/service.ts";

const ids = vi.hoisted(() => ({ next: [] as string[] }));
vi.mock("../../src/domain/api-key-secret.ts", async (importOriginal) => {
  const m = await importOriginal<typeof import("../../src/domain/api-key-secret.ts")>();
  return { ...m, newKeyId: () => ids.next.shift() ?? m.newKeyId() };
});

const CACHE_MS = 1_500;

describe("unknown API key ids", () => {
  let svc: TestService;
  const search = (key: string) => connectCall<any>(svc.url, "auditlog.v1.QueryService/SearchEvents", {}, key);
  const createKey = async (id: string) => {
    ids.next.push(id);
    const r = await connectCall<{ secret: string }>(
      svc.url,
      "auditlog.v1.AdminService/CreateApiKey",
      { tenantId: "cache", name: "late", scopes: ["SCOPE_QUERY"] },
      BOOTSTRAP_KEY,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.secret.startsWith(`alk_${id}_`)).toBe(true);
    return r.body.secret;
  };

  beforeAll(async () => {
    svc = await startTestService({ AUDITLOG_KEY_CACHE_MS: String(CACHE_MS) });
    await createTenantWithKeys(svc.url, "cache");
  });
  afterAll(() => svc?.stop());

  it("a key tried before it existed works at once on the replica that created it", async () => {
    for (let i = 0; i < 3; i++) expect((await search("alk_early00key1_guess")).body.code).toBe("unauthenticated");
    const secret = await createKey("early00key1");
    expect((await search(secret)).status).toBe(200);
  });

  it("and within the cache time on another replica", async () => {
    const other = new Authenticator(new ApiKeyStore(svc.pool), null, CACHE_MS);
    const t0 = Date.now();
    expect(await other.authenticate("alk_early00key2_guess", t0)).toBeNull();
    const secret = await createKey("early00key2");
    expect((await search(secret)).status).toBe(200);
    expect(await other.authenticate(secret, t0 + 1)).toBeNull(); // still remembered as unknown there
    expect(await other.authenticate(secret, t0 + CACHE_MS)).toMatchObject({ kind: "key", tenantId: "cache" });
  });
});
