// A client in another language, built from the repository's protos alone:
// Debian's protoc and grpc_python_plugin generate Python stubs into a temp
// directory, and test/clients/python/client.py (python3-grpcio) streams
// events through Ingest, pages them back with SearchEvents and decodes the
// field violations of a rejected Append from the grpc-status-details-bin
// trailer. Skipped, saying why, when the tools are missing on a developer's
// machine; in CI (CI=true, .ci/run installs them) missing tools fail it.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const PYTHON = "/usr/bin/python3";
const PROTOC = "/usr/bin/protoc";
const GRPC_PLUGIN = "/usr/bin/grpc_python_plugin";
const CLIENT = join(ROOT, "test", "clients", "python", "client.py");
const run = promisify(execFile);

function missingTools(): string[] {
  const missing = [PYTHON, PROTOC, GRPC_PLUGIN].filter((p) => !existsSync(p));
  if (existsSync(PYTHON)) {
    try {
      execFileSync(PYTHON, ["-c", "import grpc, google.protobuf"], { stdio: "pipe" });
    } catch {
      missing.push("python3-grpcio / python3-protobuf (import grpc, google.protobuf)");
    }
  }
  return missing;
}

function protoFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".proto"))
    .map((f) => join(dir, f))
    .sort();
}

const missing = missingTools();
const inCi = process.env.CI === "true";
if (missing.length > 0 && !inCi) {
  console.warn(
    `python-client.test.ts skipped: missing ${missing.join(", ")}; ` +
      "install with: apt-get install -y protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf",
  );
}

describe.skipIf(missing.length > 0 && !inCi)("a Python grpcio client generated with protoc from proto/", () => {
  let service: TestService;
  let keys: TenantKeys;
  let out = "";
  beforeAll(async () => {
    if (missing.length > 0) throw new Error(`CI must have ${missing.join(", ")} (see .ci/run)`);
    out = mkdtempSync(join(tmpdir(), "auditlog-python-"));
    const proto = join(ROOT, "proto");
    // Exactly the command the README gives, from the repository's protos only.
    await run(PROTOC, [
      `-I${proto}`,
      `--python_out=${out}`,
      `--grpc_out=${out}`,
      `--plugin=protoc-gen-grpc=${GRPC_PLUGIN}`,
      ...protoFiles(proto).map((f) => relative(proto, f)),
    ]);
    service = await startTestService();
    keys = await createTenantWithKeys(service.url, "python-client");
  });
  afterAll(async () => {
    await service?.stop();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it("ingests over a client stream, pages the events back and reads the field violations of a rejected Append", async () => {
    const { stdout } = await run(PYTHON, [CLIENT], {
      env: {
        PATH: process.env.PATH ?? "",
        PYTHONPATH: out,
        AUDITLOG_TARGET: new URL(service.url).host,
        AUDITLOG_KEY: keys.all,
        RUN_ID: "py",
      },
      timeout: 60_000,
    });
    const result = JSON.parse(stdout) as {
      ingested: { accepted: number; duplicates: number; position: number };
      searched: { ids: string[]; pages: number };
      rejected: { code: string; status_code: number; violations: { field: string; description: string }[] } | null;
    };
    expect(result.ingested).toMatchObject({ accepted: 12, duplicates: 0 });
    expect(result.ingested.position).toBeGreaterThanOrEqual(12);
    // 12 events, 5 per page: 3 pages, in ascending order.
    expect(result.searched.ids).toEqual(Array.from({ length: 12 }, (_, i) => `py-${i}`));
    expect(result.searched.pages).toBe(3);
    expect(result.rejected).toMatchObject({ code: "INVALID_ARGUMENT", status_code: 3 });
    const fields = new Set(result.rejected!.violations.map((v) => v.field));
    expect(fields).toEqual(new Set(["events[0].action", "events[0].actor.id"]));
    for (const v of result.rejected!.violations) expect(v.description).not.toBe("");
  });
});
