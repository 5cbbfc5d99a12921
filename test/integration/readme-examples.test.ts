// The README's examples, executed as written (bash, curl, buf curl) against
// a running service, so the documentation cannot drift from the product:
// twice in a row (a reader runs them again), with and without Elasticsearch.
// And the commands the start-up banner prints, as printed.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type ChildService, startChildService } from "../support/child-service.ts";
import { freshDatabase } from "../support/db.ts";
import { BOOTSTRAP_KEY, startTestService, type TestService } from "../support/service.ts";

const ROOT = join(import.meta.dirname, "..", "..");

/** The ```sh blocks that follow an `<!-- example -->` marker, in order. */
function readmeExamples(markdown: string): string[] {
  return [...markdown.matchAll(/<!-- example -->\s*```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** Runs a bash script as a user's shell would: no npm_* variables of the test runner's npm, the project's bin first. */
async function runShell(script: string, env: Record<string, string>): Promise<string> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")));
  // Asynchronously: the service may run in this process and must keep answering.
  const r = await promisify(execFile)("bash", ["-c", `set -euo pipefail\n${script}`], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...clean, ...env, PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` },
  });
  return r.stdout;
}

describe.each([
  ["without Elasticsearch", false],
  ["with Elasticsearch", true],
])("README examples, %s", (_name, withElasticsearch) => {
  let svc: TestService;
  const indexPrefix = `readme-${randomBytes(4).toString("hex")}`;
  beforeAll(async () => {
    svc = await startTestService(
      withElasticsearch
        ? { ELASTICSEARCH_URL: inject("elasticsearchUrl"), AUDITLOG_ES_INDEX_PREFIX: indexPrefix, AUDITLOG_RECONCILE_INTERVAL_MS: "0" }
        : {},
    );
  });
  afterAll(async () => {
    await svc?.stop();
    if (withElasticsearch) await fetch(`${inject("elasticsearchUrl")}/${indexPrefix}-*`, { method: "DELETE" }).catch(() => {});
  });

  it("run as written, twice, and do what they say", async () => {
    const blocks = readmeExamples(readFileSync(join(ROOT, "README.md"), "utf8"));
    expect(blocks.length).toBeGreaterThanOrEqual(6);
    const env = { AUDITLOG_URL: svc.url, OPERATOR_KEY: BOOTSTRAP_KEY };
    const first = await runShell(blocks.join("\n"), env);
    expect(first).toContain("auditlog.v1.IngestService/Ingest");
    expect(first).toContain("grpc.health.v1.Health/Check");
    expect(first).toContain('"tenant":{"id":"acme"');
    expect(first).toMatch(/"accepted":\s*"1"/);
    // Found at once, Elasticsearch or not: the search waits for the Append's position.
    expect(first).toContain('"id":"01JDQ7ZKXW3M9V2T5B8N4C6R1A"');
    expect(first).toContain('"total":"1"');
    // The same search once more as a Connect GET.
    expect(first.match(/"total":"1"/g)).toHaveLength(2);
    expect(first).toMatch(/"ok":\s*true/);
    expect(first).toMatch(/"checked":\s*"2"/);

    const second = await runShell(blocks.join("\n"), env);
    expect(second).toContain('"code":"already_exists"');
    expect(second).toMatch(/"duplicates":\s*"1"/);
    expect(second).toMatch(/"position":\s*"0"/);
    expect(second.match(/"total":"1"/g)).toHaveLength(2);
    expect(second).toMatch(/"checked":\s*"2"/);
  });
});

describe("the start-up banner", () => {
  let svc: ChildService;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  beforeAll(async () => {
    db = await freshDatabase();
    svc = await startChildService({ DATABASE_URL: db.url, AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY, ELASTICSEARCH_URL: "" });
  });
  afterAll(async () => {
    await svc?.kill("SIGTERM");
    await db?.drop();
  });

  it("prints next steps that work as printed", async () => {
    const banner = svc.output();
    expect(banner).toContain("README.md, 'Try it'");
    expect(readFileSync(join(ROOT, "README.md"), "utf8")).toContain("\n## Try it\n");
    const lines = banner.slice(banner.indexOf("next steps")).split("\n").slice(1);
    const commands = lines
      .slice(
        0,
        lines.findIndex((l) => l.trim() === ""),
      )
      .join("\n");
    expect(commands).toContain("npx buf curl");
    const out = await runShell(commands, { AUDITLOG_BOOTSTRAP_KEY: BOOTSTRAP_KEY });
    expect(out).toContain("auditlog.v1.IngestService/Ingest");
    expect(out).toContain('"tenant":{"id":"acme"');
  });
});
