import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import { authInterceptor } from "../../src/auth/auth-interceptor.ts";
import { authorize, bearerToken } from "../../src/auth/authenticate.ts";
import type { Authenticator } from "../../src/auth/authenticator.ts";
import { type Principal, principalKey, type ScopeName } from "../../src/auth/principal.ts";

const INGEST = "auditlog.v1.IngestService";
const QUERY = "auditlog.v1.QueryService";
const ADMIN = "auditlog.v1.AdminService";

const operator: Principal = { kind: "operator" };
const key = (...scopes: ScopeName[]): Principal => ({ kind: "key", keyId: "k1", tenantId: "t1", scopes: new Set(scopes) });

/** Runs `fn` and returns the ConnectError it throws. */
function connectErrorOf(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    return e as ConnectError;
  }
  throw new Error("expected a ConnectError");
}

describe("bearerToken", () => {
  it.each([
    ["Bearer abc", "abc"],
    ["bearer abc", "abc"],
    ["BEARER abc", "abc"],
    ["Bearer   alk_k1_x-y_z", "alk_k1_x-y_z"],
    ["Bearer abc  ", "abc"],
    ["Bearer\tabc", "abc"],
  ])("reads the token from %j", (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });

  it.each([
    ["null", null],
    ["empty", ""],
    ["scheme only", "Bearer"],
    ["scheme and space", "Bearer "],
    ["another scheme", "Basic dXNlcjpwYXNz"],
    ["two tokens", "Bearer abc def"],
    ["no space", "Bearerabc"],
    ["leading space", " Bearer abc"],
    ["token without scheme", "alk_k1_abc"],
  ])("returns null for %s", (_name, header) => {
    expect(bearerToken(header)).toBeNull();
  });
});

describe("authorize", () => {
  it("lets the operator call AdminService", () => {
    expect(() => authorize(operator, ADMIN)).not.toThrow();
  });

  it.each([INGEST, QUERY])("refuses the operator on %s with PERMISSION_DENIED", (service) => {
    const e = connectErrorOf(() => authorize(operator, service));
    expect(e.code).toBe(Code.PermissionDenied);
    expect(e.rawMessage).toMatch(/only call AdminService/);
  });

  it.each([
    [INGEST, "ingest"],
    [QUERY, "query"],
    [ADMIN, "admin"],
  ] as const)("lets a key with the scope call %s", (service, scope) => {
    expect(() => authorize(key(scope), service)).not.toThrow();
    expect(() => authorize(key("ingest", "query", "admin"), service)).not.toThrow();
  });

  it.each([
    [INGEST, "ingest", ["query", "admin"]],
    [QUERY, "query", ["ingest"]],
    [ADMIN, "admin", ["ingest", "query"]],
  ] as const)("refuses a key without the scope on %s with PERMISSION_DENIED", (service, scope, others) => {
    for (const scopes of [[], others]) {
      const e = connectErrorOf(() => authorize(key(...scopes), service));
      expect(e.code).toBe(Code.PermissionDenied);
      expect(e.rawMessage).toBe(`this API key lacks the "${scope}" scope`);
    }
  });

  it("refuses services without an access rule, for keys and the operator", () => {
    for (const p of [operator, key("ingest", "query", "admin")]) {
      const e = connectErrorOf(() => authorize(p, "auditlog.v1.SecretService"));
      expect(e.code).toBe(Code.PermissionDenied);
      expect(e.rawMessage).toMatch(/no access rule/);
    }
  });
});

describe("authInterceptor", () => {
  function setup(principals: Record<string, Principal>) {
    const authenticate = vi.fn(async (token: string) => principals[token] ?? null);
    const auth = { authenticate } as unknown as Authenticator;
    const next = vi.fn(async (req: { contextValues: ReturnType<typeof createContextValues> }) => ({
      principal: req.contextValues.get(principalKey),
    }));
    const handler = authInterceptor(auth)(next as never);
    const call = (service: string, authorization?: string) => {
      const header = new Headers();
      if (authorization !== undefined) header.set("authorization", authorization);
      const req = { service: { typeName: service }, method: { name: "AnyMethod" }, header, contextValues: createContextValues() };
      return handler(req as never) as unknown as Promise<{ principal: Principal | null }>;
    };
    return { authenticate, next, call };
  }

  it("lets health and reflection through without a key", async () => {
    const { call, authenticate, next } = setup({});
    for (const s of ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]) {
      await expect(call(s)).resolves.toEqual({ principal: null });
    }
    expect(authenticate).not.toHaveBeenCalled();
    expect(next).toHaveBeenCalledTimes(3);
  });

  it("answers UNAUTHENTICATED without a bearer header", async () => {
    const { call, authenticate, next } = setup({});
    for (const h of [undefined, "", "Basic abc"]) {
      await expect(call(INGEST, h)).rejects.toMatchObject({ code: Code.Unauthenticated });
    }
    expect(authenticate).not.toHaveBeenCalled();
    expect(next).not.toHaveBeenCalled();
  });

  it("answers UNAUTHENTICATED for a key the authenticator does not know", async () => {
    const { call, authenticate, next } = setup({});
    await expect(call(INGEST, "Bearer alk_nope_x")).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect(authenticate).toHaveBeenCalledWith("alk_nope_x");
    expect(next).not.toHaveBeenCalled();
  });

  it("answers PERMISSION_DENIED for a known key without the scope", async () => {
    const { call, next } = setup({ q: key("query") });
    await expect(call(INGEST, "Bearer q")).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect(next).not.toHaveBeenCalled();
  });

  it("passes the principal to the handler when allowed", async () => {
    const principal = key("ingest");
    const { call, next } = setup({ good: principal, op: operator });
    await expect(call(INGEST, "Bearer good")).resolves.toEqual({ principal });
    await expect(call(ADMIN, "bearer op")).resolves.toEqual({ principal: operator });
    expect(next).toHaveBeenCalledTimes(2);
  });

  it("refuses the operator outside AdminService", async () => {
    const { call } = setup({ op: operator });
    await expect(call(QUERY, "Bearer op")).rejects.toMatchObject({ code: Code.PermissionDenied });
  });
});

describe("checkpoint RPCs by role", () => {
  const token = (role: "admin" | "auditor" | "user"): Principal => ({
    kind: "token",
    subject: "alice",
    role,
    tenants: ["t"],
    tenantId: "t",
  });

  it.each(["ListCheckpoints", "CreateCheckpoint"])("lets auditors, admins and query keys call %s, not users", (method) => {
    expect(() => authorize(token("auditor"), QUERY, method)).not.toThrow();
    expect(() => authorize(token("admin"), QUERY, method)).not.toThrow();
    expect(() => authorize(key("query"), QUERY, method)).not.toThrow();
    expect(connectErrorOf(() => authorize(token("user"), QUERY, method)).code).toBe(Code.PermissionDenied);
  });
});
