// Entry point: how Node runs the service first (node-runtime.ts: the
// compile cache, and the heap flags, for which the process may replace
// itself), then the service (serve.ts). Nothing else is imported
// statically, so that all this comes before the service's modules load.
import { prepareNodeRuntime } from "./node-runtime.ts";

try {
  prepareNodeRuntime();
} catch (err) {
  // A bad AUDITLOG_HEAP_FLAGS, like any bad configuration (exit status 2).
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}
await import("./serve.ts");
