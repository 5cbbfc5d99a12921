// A throw-away Elasticsearch for development and benchmarks, started with
// src/devservers/elasticsearch.ts (where it comes from, what it lacks, how it
// dies with us).
//
//   node scripts/elasticsearch.ts [--port N] [--heap 512m] [--data-dir DIR]
//       [--keep-data] [--fast-startup] [--version 8.19.21] [--cache-dir DIR]
//
// Prints the URL on stdout (progress goes to stderr) and runs until
// SIGINT/SIGTERM/SIGHUP, then stops Elasticsearch and removes its data
// (unless --data-dir/--keep-data).
import { type StartElasticsearchOptions, startElasticsearch } from "../src/devservers/elasticsearch.ts";

async function main(argv: string[]): Promise<void> {
  const o: StartElasticsearchOptions = { log: (m) => process.stderr.write(`${m}\n`) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--port") o.port = Number(val());
    else if (a === "--heap") o.heap = val();
    else if (a === "--data-dir") o.dataDir = val();
    else if (a === "--keep-data") o.keepData = true;
    else if (a === "--fast-startup") o.fastStartup = true;
    else if (a === "--version") o.version = val();
    else if (a === "--cache-dir") o.cacheDir = val();
    else if (a === "-h" || a === "--help") {
      process.stdout.write(
        "usage: node scripts/elasticsearch.ts [--port N] [--heap 512m] [--data-dir DIR] [--keep-data] [--fast-startup] [--version V] [--cache-dir DIR]\n",
      );
      return;
    } else throw new Error(`unknown argument ${a}`);
  }
  const es = await startElasticsearch(o);
  process.stdout.write(`${es.url}\n`);
  const keepAlive = setInterval(() => {}, 1 << 30);
  let stopping = false;
  const shutdown = (sig: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${sig}: stopping elasticsearch\n`);
    es.stop().then(
      () => {
        clearInterval(keepAlive);
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGHUP", () => shutdown("SIGHUP"));
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
