// GET /metrics: the Prometheus text exposition. Open by default (like
// /healthz it says nothing about tenants or events); with a token configured
// only `Authorization: Bearer <token>` gets it, compared in constant time.
import { createHash, timingSafeEqual } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { Logger } from "../platform/log.ts";
import type { Metrics } from "../platform/metrics.ts";
import type { NodeRequest, NodeResponse } from "./listener.ts";

const digest = (s: string) => createHash("sha256").update(s).digest();

function authorized(req: NodeRequest, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(String(req.headers.authorization ?? ""));
  return m !== null && timingSafeEqual(digest(m[1]!), digest(token));
}

export function serveMetrics(req: NodeRequest, response: NodeResponse, metrics: Metrics, token: string | null, log: Logger): void {
  // Both response kinds take these calls alike (the compat API).
  const res = response as ServerResponse;
  if (token !== null && !authorized(req, token)) {
    res.writeHead(401, { "content-type": "text/plain; charset=utf-8", "www-authenticate": 'Bearer realm="metrics"' });
    res.end("unauthorized\n");
    return;
  }
  metrics.render().then(
    ({ contentType, body }) => {
      res.writeHead(200, { "content-type": contentType, "cache-control": "no-store", "content-length": String(Buffer.byteLength(body)) });
      if (req.method === "HEAD") res.end();
      else res.end(body);
    },
    (err: unknown) => {
      log.error("metrics scrape failed", { err: String(err) });
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("metrics unavailable\n");
    },
  );
}
