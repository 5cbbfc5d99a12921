// Runs the whole service in-process on a fresh database and gives tests a
// tenant with keys, created through the public AdminService API.
import { randomBytes } from "node:crypto";
import { type App, startApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/platform/log.ts";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { freshDatabase } from "./db.ts";

export const BOOTSTRAP_KEY = `test-bootstrap-${randomBytes(12).toString("hex")}`;

export type TestService = App & { databaseUrl: string; stop(): Promise<void> };

export async function startTestService(env: Record<string, string> = {}): Promise<TestService> {
  const db = await freshDatabase();
  // The access audit off unless a test asks for it: its records would change every count the tests make.
  const config = loadConfig({ PORT: "0", AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY, LOG_LEVEL: "warn", AUDITLOG_ACCESS_AUDIT: "off", ...env });
  const app = await startApp({ ...config, databaseUrl: db.url }, createLogger({ level: config.logLevel }));
  return {
    ...app,
    databaseUrl: db.url,
    async stop() {
      await app.close();
      await db.drop();
    },
  };
}

export type TenantKeys = { tenantId: string; ingest: string; query: string; admin: string; all: string };

export async function createTenantWithKeys(url: string, tenantId: string): Promise<TenantKeys> {
  const t = await connectCall(url, "auditlog.v1.AdminService/CreateTenant", { id: tenantId, name: tenantId }, BOOTSTRAP_KEY);
  if (t.status !== 200) throw new Error(`CreateTenant: ${JSON.stringify(t.body)}`);
  const key = async (scopes: string[]) => {
    const r = await connectCall<{ secret: string }>(
      url,
      "auditlog.v1.AdminService/CreateApiKey",
      { tenantId, name: scopes.join("+"), scopes },
      BOOTSTRAP_KEY,
    );
    if (r.status !== 200) throw new Error(`CreateApiKey: ${JSON.stringify(r.body)}`);
    return r.body.secret;
  };
  return {
    tenantId,
    ingest: await key(["SCOPE_INGEST"]),
    query: await key(["SCOPE_QUERY"]),
    admin: await key(["SCOPE_ADMIN"]),
    all: await key(["SCOPE_INGEST", "SCOPE_QUERY", "SCOPE_ADMIN"]),
  };
}
