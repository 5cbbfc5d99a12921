// The README's examples, executed as written (bash, curl, buf curl) against
// a running service, so the documentation cannot drift from the product.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BOOTSTRAP_KEY, startTestService, type TestService } from "../support/service.ts";

const ROOT = join(import.meta.dirname, "..", "..");

/** The ```sh blocks that follow an `<!-- example -->` marker, in order. */
function readmeExamples(markdown: string): string[] {
  return [...markdown.matchAll(/<!-- example -->\s*```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe("README examples", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(() => svc?.stop());

  it("run as written and do what they say", async () => {
    const blocks = readmeExamples(readFileSync(join(ROOT, "README.md"), "utf8"));
    expect(blocks.length).toBeGreaterThanOrEqual(6);
    const script = ["set -euo pipefail", ...blocks].join("\n");
    // Without the npm_* variables of the test runner's own npm, as in a user's shell.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")));
    // Asynchronously: the service runs in this process and must keep answering.
    const r = await promisify(execFile)("bash", ["-c", script], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
      env: {
        ...env,
        AUDITLOG_URL: svc.url,
        OPERATOR_KEY: BOOTSTRAP_KEY,
        PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`,
      },
    });
    const out = r.stdout;
    expect(out).toContain("auditlog.v1.IngestService/Ingest");
    expect(out).toContain("grpc.health.v1.Health/Check");
    expect(out).toContain('"tenant":{"id":"acme"');
    expect(out).toMatch(/"accepted":\s*"1"/);
    expect(out).toContain('"id":"01JDQ7ZKXW3M9V2T5B8N4C6R1A"');
    expect(out).toContain('"total":"1"');
    expect(out).toMatch(/"ok":\s*true/);
    expect(out).toMatch(/"checked":\s*"2"/);
  });
});
