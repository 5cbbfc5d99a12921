// Serves the built web console (console/dist) from the service's own port:
// files under the build folder only, hashed assets cached for a year,
// index.html never cached, and index.html for client routes (/search,
// /events/<id>) so that a reload or a shared link opens the right view.
// When the console is not built, / answers a short page saying how to build it.
import { createReadStream } from "node:fs";
import type http from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { gzipSync } from "node:zlib";
import type { NodeRequest, NodeResponse } from "./listener.ts";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

// Vite names built assets <name>-<hash>.<ext> under assets/: their content
// never changes under the same name.
const HASHED_ASSET = /^\/assets\/.+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

// The console's own Content-Security-Policy: scripts and styles from the
// service only, calls to the service only.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Audit log console not built</title></head>
<body><h1>The console is not built</h1>
<p>The service is running; its web console has not been built in this checkout.
Run <code>npm run build:console</code> (or <code>npm start</code>, which builds it first) and reload.</p>
<p>The API is served on this port as usual; <a href="/healthz">/healthz</a> reports the service's health.</p>
</body></html>
`;

export type StaticFilesOptions = {
  /** The build folder (absolute). */
  root: string;
  /** Paths that belong to the service (e.g. "/v1/", "/healthz"): never answered with index.html. */
  reservedPrefixes?: string[];
};

type Found = { file: string; size: number; mtime: Date };

async function fileAt(path: string): Promise<Found | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? { file: path, size: s.size, mtime: s.mtime } : undefined;
  } catch {
    return undefined;
  }
}

/** The file a URL path names inside root, or undefined when it would leave root. */
export function resolveInside(root: string, urlPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes("\0") || decoded.includes("\\")) return undefined;
  const full = normalize(join(root, decoded));
  const base = root.endsWith(sep) ? root : root + sep;
  return full.startsWith(base) ? full : undefined;
}

// HTTP/2's compatibility response has the same writeHead and end.
function plain(res: NodeResponse): http.ServerResponse {
  return res as http.ServerResponse;
}

const COMPRESSIBLE = /^(text\/|application\/json|image\/svg)/;
// Gzipped text files by path and modification time: the build is small and
// fixed, so each file is compressed once.
const gzipped = new Map<string, { mtimeMs: number; body: Buffer }>();

async function gzipOf(found: Found): Promise<Buffer> {
  const hit = gzipped.get(found.file);
  if (hit && hit.mtimeMs === found.mtime.getTime()) return hit.body;
  const body = gzipSync(await readFile(found.file), { level: 9 });
  gzipped.set(found.file, { mtimeMs: found.mtime.getTime(), body });
  return body;
}

function acceptsGzip(req: NodeRequest): boolean {
  const accept = req.headers["accept-encoding"];
  return typeof accept === "string" && /\bgzip\b/.test(accept);
}

async function send(req: NodeRequest, res: NodeResponse, found: Found, cacheControl: string): Promise<void> {
  const type = CONTENT_TYPES[extname(found.file).toLowerCase()] ?? "application/octet-stream";
  const headers: Record<string, string> = {
    "content-type": type,
    "content-length": String(found.size),
    "cache-control": cacheControl,
    "last-modified": found.mtime.toUTCString(),
    "x-content-type-options": "nosniff",
  };
  if (COMPRESSIBLE.test(type)) {
    headers["vary"] = "accept-encoding";
    if (acceptsGzip(req) && found.size > 1024) {
      const body = await gzipOf(found);
      headers["content-encoding"] = "gzip";
      headers["content-length"] = String(body.length);
      if (type.startsWith("text/html")) {
        headers["content-security-policy"] = CSP;
        headers["referrer-policy"] = "no-referrer";
      }
      plain(res).writeHead(200, headers);
      if (req.method === "HEAD") res.end();
      else res.end(body);
      return;
    }
  }
  if (type.startsWith("text/html")) {
    headers["content-security-policy"] = CSP;
    headers["referrer-policy"] = "no-referrer";
  }
  plain(res).writeHead(200, headers);
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  const stream = createReadStream(found.file);
  stream.on("error", () => res.destroy());
  stream.pipe(res);
}

/**
 * An httpRoutes handler: resolves true when it answered. Only GET and HEAD,
 * only outside the reserved prefixes.
 */
export function staticFilesHandler(opts: StaticFilesOptions): (req: NodeRequest, res: NodeResponse) => Promise<boolean> {
  const reserved = opts.reservedPrefixes ?? [];
  return async (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "/").split("?", 1)[0]!.split("#", 1)[0]!;
    if (!path.startsWith("/") || reserved.some((p) => path.startsWith(p))) return false;
    const index = await fileAt(join(opts.root, "index.html"));
    if (path !== "/" && path !== "/index.html") {
      const target = resolveInside(opts.root, path);
      if (target === undefined) return false;
      const found = await fileAt(target);
      if (found) {
        await send(req, res, found, HASHED_ASSET.test(path) ? "public, max-age=31536000, immutable" : "no-cache");
        return true;
      }
      // A missing file (an asset, anything with an extension) is a 404;
      // anything else is a client route of the console.
      if (extname(path) !== "" || path.startsWith("/assets/")) return false;
    }
    if (!index) {
      const body = Buffer.from(NOT_BUILT);
      plain(res).writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "content-length": String(body.length),
        "cache-control": "no-store",
      });
      if (req.method === "HEAD") res.end();
      else res.end(body);
      return true;
    }
    await send(req, res, index, "no-cache");
    return true;
  };
}
