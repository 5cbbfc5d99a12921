// CORS for browser clients (Connect and gRPC-Web) from configured origins.
// Header and method lists come from @connectrpc/connect's `cors` constants.

import { cors as connectCors } from "@connectrpc/connect";
import type { NodeHandler, NodeRequest, NodeResponse } from "./listener.ts";

export interface CorsOptions {
  /**
   * Origins allowed to call the API from a browser, e.g.
   * "https://console.example.com". "*" allows any origin. Empty: no CORS.
   */
  allowedOrigins: string[];
  /** Request headers browsers may send besides Connect's (default: ["Authorization"]). */
  extraAllowedHeaders?: string[];
  /** Response headers scripts may read besides Connect's. */
  extraExposedHeaders?: string[];
  /** How long browsers may cache a preflight answer (default 7200 s, Chrome's cap). */
  maxAgeSeconds?: number;
}

/** Normalizes an origin ("HTTPS://Example.com:443/" -> "https://example.com"). */
export function normalizeOrigin(origin: string): string {
  try {
    const url = new URL(origin);
    if (url.origin !== "null") return url.origin;
  } catch {
    // fall through: compare as given
  }
  return origin.trim().toLowerCase();
}

export function createOriginMatcher(allowedOrigins: string[]): (origin: string) => boolean {
  if (allowedOrigins.includes("*")) return () => true;
  const allowed = new Set(allowedOrigins.map(normalizeOrigin));
  return (origin) => origin !== "null" && allowed.has(normalizeOrigin(origin));
}

function unique(values: readonly string[]): string[] {
  const seen = new Map<string, string>();
  for (const v of values) seen.set(v.toLowerCase(), v);
  return [...seen.values()];
}

function addVary(res: NodeResponse, value: string): void {
  const current = res.getHeader("vary");
  const list =
    current === undefined
      ? []
      : String(current)
          .split(",")
          .map((v) => v.trim())
          .filter(Boolean);
  for (const v of value.split(",").map((s) => s.trim())) {
    if (!list.some((x) => x.toLowerCase() === v.toLowerCase())) list.push(v);
  }
  res.setHeader("vary", list.join(", "));
}

/**
 * Wraps a request handler with CORS. Preflight requests (OPTIONS with
 * Access-Control-Request-Method) are answered here with 204: with the CORS
 * headers for allowed origins, without them otherwise (the browser then
 * blocks the call). Other requests from allowed origins get
 * Access-Control-Allow-Origin and Access-Control-Expose-Headers.
 */
export function withCors(handler: NodeHandler, opts: CorsOptions): NodeHandler {
  if (opts.allowedOrigins.length === 0) return handler;
  const isAllowed = createOriginMatcher(opts.allowedOrigins);
  const allowMethods = unique(connectCors.allowedMethods).join(", ");
  const allowHeaders = unique([...connectCors.allowedHeaders, ...(opts.extraAllowedHeaders ?? ["Authorization"])]).join(", ");
  const exposeHeaders = unique([
    ...connectCors.exposedHeaders,
    // Error details of the Connect protocol's unary trailers, and gRPC-Web
    // responses' trailers-only statuses, are covered by the list above.
    ...(opts.extraExposedHeaders ?? []),
  ]).join(", ");
  const maxAge = String(opts.maxAgeSeconds ?? 7200);

  return function corsHandler(req: NodeRequest, res: NodeResponse): void {
    const origin = req.headers.origin;
    const isPreflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (origin === undefined) {
      if (isPreflight) {
        res.statusCode = 204;
        res.end();
        return;
      }
      handler(req, res);
      return;
    }
    const allowed = isAllowed(origin);
    addVary(res, "Origin");
    if (isPreflight) {
      addVary(res, "Access-Control-Request-Method, Access-Control-Request-Headers");
      if (allowed) {
        res.setHeader("access-control-allow-origin", origin);
        res.setHeader("access-control-allow-methods", allowMethods);
        res.setHeader("access-control-allow-headers", allowHeaders);
        res.setHeader("access-control-max-age", maxAge);
      }
      res.statusCode = 204;
      res.end();
      return;
    }
    if (allowed) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("access-control-expose-headers", exposeHeaders);
    }
    handler(req, res);
  };
}
