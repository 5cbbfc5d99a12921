// The service: configuration -> (embedded) PostgreSQL -> app -> signals. Started by main.ts.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { flushCompileCache } from "node:module";
import { join, resolve } from "node:path";
import { startApp } from "./app.ts";
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { createLogger } from "./platform/log.ts";
import { startEmbeddedPostgres } from "./devservers/embedded-postgres.ts";

/** With nothing configured, a bootstrap key is made once and kept (mode 600) in the data directory. */
function localBootstrapKey(dataDir: string): string {
  const file = join(dataDir, "bootstrap-key");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(dataDir, { recursive: true });
  const key = `boot_${randomBytes(24).toString("hex")}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/** Likewise the checkpoint signing key (Ed25519, PKCS#8 PEM); returns its file. */
function localCheckpointKeyFile(dataDir: string): string {
  const file = join(dataDir, "checkpoint-key.pem");
  if (existsSync(file)) return file;
  mkdirSync(dataDir, { recursive: true });
  const { privateKey } = generateKeyPairSync("ed25519");
  writeFileSync(file, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
  return file;
}

/** Like the bootstrap key: with nothing configured, a KEK is made once and kept (mode 600) in the data directory. */
function localKek(dataDir: string): Buffer {
  const file = join(dataDir, "kek");
  if (existsSync(file)) return Buffer.from(readFileSync(file, "utf8").trim(), "base64");
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, `${key.toString("base64")}\n`, { mode: 0o600 });
  return key;
}

/** How the start-up banner tells a shell to get the operator key, without printing the key. */
function operatorKeyShell(fromEnvironment: boolean, keyFile: string | null): string {
  if (fromEnvironment) return '"$AUDITLOG_BOOTSTRAP_KEY"';
  return keyFile ? `"$(cat '${keyFile}')"` : "'<no operator key: set AUDITLOG_BOOTSTRAP_KEY>'";
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: config.logLevel });
  // Only with an OTLP endpoint: otherwise no provider is registered and every span is the API's no-op.
  const { tracesUrl, serviceName } = config.telemetry;
  // The SDK and its exporter are loaded only then (docs/PERFORMANCE.md, "Round two: memory").
  const tracing = tracesUrl ? (await import("./platform/tracing-sdk.ts")).startTracing({ url: tracesUrl, serviceName }) : null;
  if (tracing) log.info("exporting traces over OTLP/HTTP", { url: tracesUrl, serviceName });
  const dataDir = resolve(config.dataDir);
  let stopPostgres: (() => Promise<void>) | null = null;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    log.info("DATABASE_URL is not set: starting embedded PostgreSQL", { dataDir: join(dataDir, "postgres") });
    const pgEmbedded = await startEmbeddedPostgres({
      dataDir: join(dataDir, "postgres"),
      port: config.embeddedPostgresPort,
      log: (msg) => log.debug(msg, { component: "embedded-postgres" }),
    });
    databaseUrl = pgEmbedded.url;
    stopPostgres = pgEmbedded.stop;
  }
  let bootstrapKey = config.bootstrapKey;
  let bootstrapNote = "AUDITLOG_BOOTSTRAP_KEY (from the environment)";
  if (!bootstrapKey && !config.databaseUrl) {
    bootstrapKey = localBootstrapKey(dataDir);
    bootstrapNote = `in ${join(dataDir, "bootstrap-key")}`;
  }
  const checkpointKeyFile = config.checkpointKeyFile ?? (config.databaseUrl ? null : localCheckpointKeyFile(dataDir));

  let kek = config.kek;
  if (!kek && !config.databaseUrl) kek = { current: { id: "local", key: localKek(dataDir) }, retired: [] };
  if (!kek)
    log.warn(
      "AUDITLOG_KEK is not set: encryption at rest is off (changes are stored in clear); see docs/ARCHITECTURE.md, 'Data protection'",
    );

  const app = await startApp({ ...config, databaseUrl: databaseUrl as string, bootstrapKey, checkpointKeyFile, kek }, log);
  log.info("auditlog is serving", { url: app.url, grpc: config.tls ? "h2 (TLS)" : "h2c", connect: "HTTP/1.1 and HTTP/2" });
  // Every module is loaded: the compile cache (node-runtime.ts) is written now for the next start, not only at a clean exit.
  flushCompileCache();
  process.stdout.write(
    [
      "",
      `  auditlog listening on ${app.url}  (gRPC, gRPC-Web and Connect on one port)`,
      bootstrapKey ? `  operator key: ${bootstrapNote}` : "  no AUDITLOG_BOOTSTRAP_KEY set: AdminService is closed to everyone",
      "  next steps (README.md, 'Try it'), from the project directory:",
      `    export AUDITLOG_URL=${app.url}`,
      `    export OPERATOR_KEY=${operatorKeyShell(config.bootstrapKey !== null, bootstrapKey ? join(dataDir, "bootstrap-key") : null)}`,
      config.tls
        ? `    npx buf curl --protocol grpc --cacert '${config.tls.certFile}' --list-methods "$AUDITLOG_URL"`
        : '    npx buf curl --protocol grpc --http2-prior-knowledge --list-methods "$AUDITLOG_URL"',
      `    curl -sS ${config.tls ? `--cacert '${config.tls.certFile}' ` : ""}"$AUDITLOG_URL/auditlog.v1.AdminService/CreateTenant" -H "Authorization: Bearer $OPERATOR_KEY" \\`,
      `      -H 'Content-Type: application/json' -d '{"id":"acme","name":"Acme"}'`,
      "",
    ].join("\n") + "\n",
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    try {
      await app.close();
      // Spans still buffered are sent before exit.
      await tracing?.shutdown().catch((err: unknown) => log.warn("trace export at shutdown failed", { err: String(err) }));
      if (stopPostgres) await stopPostgres();
      log.info("stopped");
      process.exit(0);
    } catch (err) {
      log.error("shutdown failed", { err: String(err) });
      process.exit(1);
    }
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((err) => {
  process.stderr.write(`auditlog failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
