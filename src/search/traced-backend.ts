// Spans around the search backend's reads (either backend), as children of
// the RPC's span. Without a tracer provider these are the API's no-ops.
import { withSpan } from "../platform/tracing.ts";
import type { SearchBackend } from "./backend.ts";

export function tracedBackend(backend: SearchBackend): SearchBackend {
  const attributes = { "auditlog.search.backend": backend.name };
  return {
    name: backend.name,
    search: (...args) =>
      withSpan(
        "search",
        async (span) => {
          const page = await backend.search(...args);
          span.setAttribute("auditlog.search.records", page.records.length);
          return page;
        },
        { attributes },
      ),
    // Exports stream for as long as the client reads; their RPC span covers them.
    export: (...args) => backend.export(...args),
    ...(backend.exportNdjson ? { exportNdjson: backend.exportNdjson.bind(backend) } : {}),
    stats: (...args) => withSpan("search stats", () => backend.stats(...args), { attributes }),
    waitForPosition: (...args) => withSpan("search wait for position", () => backend.waitForPosition(...args), { attributes }),
    indexStatus: (...args) => backend.indexStatus(...args),
  };
}
