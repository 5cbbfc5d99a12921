// Export throughput and memory: streams up to N events of one tenant through
// esExport or pgExport, formats them (CSV or NDJSON, the ExportEvents chunks
// of src/services/export-stream.ts) and writes them to /dev/null with
// backpressure, then prints rows/s, MB/s and the process's peak RSS. Memory
// must stay flat however large N is: one backend batch plus one chunk.
//
// Run against an already populated database / index (nothing is written):
//
//   DATABASE_URL=postgres://... ELASTICSEARCH_URL=http://127.0.0.1:9200 TENANT=acme \
//     node bench/export-memory.ts
//
// Environment:
//   TENANT             tenant to export (required)
//   BACKEND            es | pg (default: es when ELASTICSEARCH_URL is set, else pg)
//   DATABASE_URL       PostgreSQL (BACKEND=pg)
//   ELASTICSEARCH_URL  Elasticsearch (BACKEND=es)
//   ALIAS              read alias (default auditlog-events)
//   N                  events to export at most (default 1000000)
//   FORMAT             csv | ndjson (default csv)
//   ORDER              asc | desc (default desc)
//   BATCH              backend batch size (default 2000)
import fs from "node:fs";
import { once } from "node:events";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import type { SortDirection } from "../src/domain/event-query.ts";
import type { StoredRecord } from "../src/domain/event-record.ts";
import type { SearchBackend } from "../src/search/backend.ts";
import { esExport } from "../src/search/elasticsearch/export.ts";
import { READ_ALIAS } from "../src/search/elasticsearch/index-template.ts";
import { exportChunks } from "../src/services/export-stream.ts";
import { pgExport } from "../src/search/postgres/export.ts";

const env = process.env;
const tenantId = env["TENANT"];
if (!tenantId) {
  process.stderr.write("TENANT is required (see the comment at the top of bench/export-memory.ts)\n");
  process.exit(2);
}
const backendName = env["BACKEND"] ?? (env["ELASTICSEARCH_URL"] ? "es" : "pg");
const limit = BigInt(env["N"] ?? "1000000");
const format = env["FORMAT"] === "ndjson" ? "ndjson" : "csv";
const direction: SortDirection = env["ORDER"] === "asc" ? "asc" : "desc";
const batchSize = Number(env["BATCH"] ?? "2000");
const alias = env["ALIAS"] ?? READ_ALIAS;

let close: () => Promise<void>;
let exporter: (signal: AbortSignal) => AsyncIterable<StoredRecord[]>;
if (backendName === "es") {
  if (!env["ELASTICSEARCH_URL"]) throw new Error("BACKEND=es needs ELASTICSEARCH_URL");
  const client = new Client({ node: env["ELASTICSEARCH_URL"] });
  exporter = (signal) => esExport(client, tenantId, { conditions: [] }, direction, limit, signal, { alias, batchSize });
  close = () => client.close();
} else {
  if (!env["DATABASE_URL"]) throw new Error("BACKEND=pg needs DATABASE_URL");
  const pool = new pg.Pool({ connectionString: env["DATABASE_URL"], max: 2 });
  exporter = (signal) => pgExport(pool, tenantId, { conditions: [] }, direction, limit, signal, { batchSize });
  close = () => pool.end();
}

let rows = 0;
const counting = async function* (signal: AbortSignal): AsyncGenerator<StoredRecord[]> {
  for await (const batch of exporter(signal)) {
    rows += batch.length;
    yield batch;
  }
};
const backend = {
  export: (_t: string, _q: unknown, _d: unknown, _l: unknown, signal: AbortSignal) => counting(signal),
} as unknown as SearchBackend;

const out = fs.createWriteStream("/dev/null");
const rssBefore = process.memoryUsage().rss;
let heapPeak = 0;
const sampler = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 50);
const started = performance.now();
let bytes = 0;
let lastReport = started;
for await (const chunk of exportChunks(
  backend,
  { tenantId, q: { conditions: [] }, direction, limit, format },
  new AbortController().signal,
)) {
  bytes += chunk.length;
  if (!out.write(chunk)) await once(out, "drain");
  const now = performance.now();
  if (now - lastReport > 5000) {
    lastReport = now;
    process.stderr.write(
      `  ${rows} rows, ${Math.round(rows / ((now - started) / 1000))} rows/s, rss ${mb(process.memoryUsage().rss)} MB\n`,
    );
  }
}
out.end();
await once(out, "finish");
const seconds = (performance.now() - started) / 1000;
clearInterval(sampler);
await close();

function mb(n: number): string {
  return (n / 1024 / 1024).toFixed(1);
}

const result = {
  backend: backendName,
  format,
  order: direction,
  batchSize,
  rows,
  seconds: Number(seconds.toFixed(2)),
  rowsPerSecond: Math.round(rows / seconds),
  mbPerSecond: Number((bytes / 1024 / 1024 / seconds).toFixed(1)),
  bytes,
  rssAtStartMB: Number(mb(rssBefore)),
  // maxRSS is in KiB.
  peakRssMB: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
  peakHeapUsedMB: Number(mb(heapPeak)),
};
process.stdout.write(JSON.stringify(result) + "\n");
