// The console's static route (src/server/static-files.ts) on a loopback HTTP
// server over a build folder of its own.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveInside, staticFilesHandler } from "../../src/server/static-files.ts";

type Served = { url: string; close(): Promise<void> };

async function serve(root: string): Promise<Served> {
  const handler = staticFilesHandler({ root, reservedPrefixes: ["/v1/", "/healthz"] });
  const server = http.createServer((req, res) => {
    handler(req, res).then((handled) => {
      if (!handled) {
        res.writeHead(404);
        res.end("fallthrough");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A GET without fetch's automatic decompression. */
function get(
  url: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .request(url, { method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      })
      .on("error", reject)
      .end();
  });
}

describe("a built console", () => {
  let dir: string;
  let s: Served;
  const js = `console.log(${JSON.stringify("x".repeat(4000))});`;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "static-"));
    await mkdir(join(dir, "dist", "assets"), { recursive: true });
    await writeFile(join(dir, "dist", "index.html"), "<!doctype html><title>console</title>");
    await writeFile(join(dir, "dist", "assets", "index-AbCd1234.js"), js);
    await writeFile(join(dir, "dist", "robots.txt"), "User-agent: *\n");
    await writeFile(join(dir, "secret.txt"), "outside the build folder");
    s = await serve(join(dir, "dist"));
  });
  afterAll(async () => {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves index.html at / with no-cache and a CSP", async () => {
    const r = await get(`${s.url}/`);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(r.headers["cache-control"]).toBe("no-cache");
    expect(r.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(r.body.toString()).toContain("<title>console</title>");
  });

  it("caches hashed assets for a year, gzips them when asked, and answers HEAD without a body", async () => {
    const plainJs = await get(`${s.url}/assets/index-AbCd1234.js`);
    expect(plainJs.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(plainJs.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(plainJs.body.toString()).toBe(js);
    const gz = await get(`${s.url}/assets/index-AbCd1234.js`, { "accept-encoding": "gzip, br" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(Number(gz.headers["content-length"])).toBe(gz.body.length);
    expect(gz.body.length).toBeLessThan(js.length / 10);
    expect(gunzipSync(gz.body).toString()).toBe(js);
    const head = await get(`${s.url}/assets/index-AbCd1234.js`, {}, "HEAD");
    expect(head.headers["content-length"]).toBe(String(js.length));
    expect(head.body.length).toBe(0);
    // Not hashed: revalidated.
    expect((await get(`${s.url}/robots.txt`)).headers["cache-control"]).toBe("no-cache");
  });

  it("answers client routes with index.html, and missing files, reserved paths and other methods not at all", async () => {
    const route = await get(`${s.url}/events/ev-1?x=1`);
    expect(route.status).toBe(200);
    expect(route.body.toString()).toContain("<title>console</title>");
    expect((await get(`${s.url}/assets/index-missing1.js`)).body.toString()).toBe("fallthrough");
    expect((await get(`${s.url}/favicon.ico`)).body.toString()).toBe("fallthrough");
    expect((await get(`${s.url}/v1/export`)).body.toString()).toBe("fallthrough");
    expect((await get(`${s.url}/healthz`)).body.toString()).toBe("fallthrough");
    expect((await get(`${s.url}/`, {}, "POST")).body.toString()).toBe("fallthrough");
  });

  it("never serves a file outside the build folder", async () => {
    for (const path of ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt", "/..%5csecret.txt", "/%00"]) {
      const r = await get(`${s.url}${path}`);
      expect(r.body.toString(), path).not.toContain("outside the build folder");
    }
    expect(resolveInside("/srv/dist", "/../secret.txt")).toBeUndefined();
    expect(resolveInside("/srv/dist", "/%2e%2e/secret.txt")).toBeUndefined();
    expect(resolveInside("/srv/dist", "/%E0%A4%A")).toBeUndefined();
    expect(resolveInside("/srv/dist", "/assets/a.js")).toBe("/srv/dist/assets/a.js");
  });
});

it("says how to build the console when it is not built", async () => {
  const dir = await mkdtemp(join(tmpdir(), "static-empty-"));
  const s = await serve(dir);
  try {
    const r = await get(`${s.url}/search`);
    expect(r.status).toBe(200);
    expect(r.headers["cache-control"]).toBe("no-store");
    expect(r.body.toString()).toContain("npm run build:console");
    expect((await get(`${s.url}/assets/index-AbCd1234.js`)).body.toString()).toBe("fallthrough");
  } finally {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  }
});
