// Signed checkpoints and offline verification against the real service:
// the service signs a chain head and an export's manifest, then the
// verifier (scripts/verify.ts, no service, no database) checks the file
// against them, and names the first altered, missing or reordered event.
import { execFile } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runVerify } from "../../scripts/verify.ts";
import { connectCall } from "../../scripts/lib/connect-json.ts";
import { checkpointPayload, parseCheckpointDocument, checkpointDocument } from "../../src/domain/checkpoint.ts";
import { signingKeyFromPem } from "../../src/domain/signing.ts";
import { CheckpointStore } from "../../src/store/checkpoint-store.ts";
import { headSigner } from "../../src/services/checkpoints.ts";
import { makeEvent, toConnectJson } from "../support/events.ts";
import { bearerInterceptor, serviceClients, TRANSPORTS } from "../support/transports.ts";
import { ExportFormat, SortOrder } from "../../gen/auditlog/v1/query_pb.js";
import { createTenantWithKeys, startTestService, type TenantKeys, type TestService } from "../support/service.ts";

const EVENTS = 30;
const dir = mkdtempSync(join(tmpdir(), "auditlog-verify-"));
const keyFile = join(dir, "checkpoint-key.pem");
writeFileSync(keyFile, generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }));

let svc: TestService;
let keys: TenantKeys;
let publicKeyFile: string;
let checkpointFile: string;
let exportText: string;

const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const verify = (exportPath: string, checkpoint = checkpointFile, key = publicKeyFile) =>
  runVerify([exportPath, "--checkpoint", checkpoint, "--public-key", key]);
const lines = () => exportText.split("\n").filter(Boolean);
const lineOfSequence = (ls: string[], seq: number) => ls.findIndex((l) => l.includes(`"sequence":"${seq}"`));

async function exportFile(query: string): Promise<string> {
  const res = await fetch(`${svc.url}/v1/export?${query}`, { headers: { authorization: `Bearer ${keys.query}` } });
  expect(res.status).toBe(200);
  return res.text();
}

beforeAll(async () => {
  svc = await startTestService({ AUDITLOG_CHECKPOINT_KEY_FILE: keyFile, AUDITLOG_CHECKPOINT_INTERVAL_MS: "0" });
  keys = await createTenantWithKeys(svc.url, "verify-t");
  const events = Array.from({ length: EVENTS }, (_, i) => toConnectJson(makeEvent(i, "vf")));
  const r = await connectCall(svc.url, "auditlog.v1.IngestService/Append", { events }, keys.ingest);
  expect(r.status).toBe(200);

  const pem = await fetch(`${svc.url}/v1/checkpoint-key`);
  expect(pem.status).toBe(200);
  publicKeyFile = file("public.pem", await pem.text());

  const cp = await connectCall<{ checkpoint: { sequence: string; hash: string; keyId: string; document: string } }>(
    svc.url,
    "auditlog.v1.QueryService/CreateCheckpoint",
    {},
    keys.query,
  );
  expect(cp.status).toBe(200);
  checkpointFile = file("checkpoint.json", cp.body.checkpoint.document);
  exportText = await exportFile("order=asc&manifest=true");
}, 60_000);

afterAll(async () => {
  await svc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("checkpoints", () => {
  it("serves the public key unauthenticated, as PEM and as a JWK set with the key id", async () => {
    const key = signingKeyFromPem(readFileSync(keyFile, "utf8"));
    expect(readFileSync(publicKeyFile, "utf8")).toContain("-----BEGIN PUBLIC KEY-----");
    const jwk = await fetch(`${svc.url}/v1/checkpoint-key?format=jwk`);
    expect(jwk.headers.get("x-auditlog-key-id")).toBe(key.keyId);
    expect(await jwk.json()).toEqual({ keys: [expect.objectContaining({ kty: "OKP", crv: "Ed25519", kid: key.keyId })] });
  });

  it("signs the current head on demand, keeps it once, and lists it", async () => {
    const cp = parseCheckpointDocument(readFileSync(checkpointFile, "utf8"));
    expect(cp.tenantId).toBe("verify-t");
    expect(cp.sequence).toBeGreaterThanOrEqual(BigInt(EVENTS));
    const chain = await connectCall<{ ok: boolean; headHash: string; toSequence: string }>(
      svc.url,
      "auditlog.v1.QueryService/VerifyChain",
      { toSequence: cp.sequence.toString() },
      keys.query,
    );
    expect(chain.body).toMatchObject({ ok: true, headHash: cp.hash });
    const list = await connectCall<{ checkpoints: { sequence: string; document: string }[] }>(
      svc.url,
      "auditlog.v1.QueryService/ListCheckpoints",
      {},
      keys.query,
    );
    expect(list.status).toBe(200);
    expect(list.body.checkpoints.map((c) => c.document)).toContain(readFileSync(checkpointFile, "utf8"));
  });

  it("refuses a manifest on CSV exports and RPCs of another tenant see nothing", async () => {
    const res = await fetch(`${svc.url}/v1/export?format=csv&manifest=true`, { headers: { authorization: `Bearer ${keys.query}` } });
    expect(res.status).toBe(400);
    const other = await createTenantWithKeys(svc.url, "verify-other");
    const list = await connectCall<{ checkpoints?: unknown[] }>(svc.url, "auditlog.v1.QueryService/ListCheckpoints", {}, other.query);
    expect(list.body.checkpoints ?? []).toEqual([]);
    const none = await connectCall(svc.url, "auditlog.v1.QueryService/CreateCheckpoint", {}, other.query);
    expect(none.body).toMatchObject({ code: "failed_precondition" });
  });

  it("without a key: nothing is signed, checkpoints are still listed, the key endpoint is 404", async () => {
    const keyless = await startTestService();
    try {
      const t = await createTenantWithKeys(keyless.url, "verify-keyless");
      const events = [toConnectJson(makeEvent(0, "kl"))];
      expect((await connectCall(keyless.url, "auditlog.v1.IngestService/Append", { events }, t.ingest)).status).toBe(200);
      const create = await connectCall(keyless.url, "auditlog.v1.QueryService/CreateCheckpoint", {}, t.query);
      expect(create.body).toMatchObject({ code: "failed_precondition", message: expect.stringContaining("AUDITLOG_CHECKPOINT_KEY_FILE") });
      const list = await connectCall(keyless.url, "auditlog.v1.QueryService/ListCheckpoints", {}, t.query);
      expect(list.status).toBe(200);
      expect((await fetch(`${keyless.url}/v1/checkpoint-key`)).status).toBe(404);
      const exp = await fetch(`${keyless.url}/v1/export?manifest=true`, { headers: { authorization: `Bearer ${t.query}` } });
      expect(await exp.json()).toMatchObject({ code: "failed_precondition" });
    } finally {
      await keyless.stop();
    }
  });

  it("are signed periodically when AUDITLOG_CHECKPOINT_INTERVAL_MS is set", async () => {
    const periodic = await startTestService({ AUDITLOG_CHECKPOINT_KEY_FILE: keyFile, AUDITLOG_CHECKPOINT_INTERVAL_MS: "100" });
    try {
      const t = await createTenantWithKeys(periodic.url, "verify-periodic");
      const events = Array.from({ length: 3 }, (_, i) => toConnectJson(makeEvent(i, "pd")));
      expect((await connectCall(periodic.url, "auditlog.v1.IngestService/Append", { events }, t.ingest)).status).toBe(200);
      await expect
        .poll(
          async () =>
            (
              await connectCall<{ checkpoints?: { sequence: string }[] }>(
                periodic.url,
                "auditlog.v1.QueryService/ListCheckpoints",
                {},
                t.query,
              )
            ).body.checkpoints?.[0]?.sequence,
          { timeout: 10_000 },
        )
        .toBe("3");
    } finally {
      await periodic.stop();
    }
  });

  it("the periodic run signs moved heads only, one replica at a time", async () => {
    const store = new CheckpointStore(svc.pool);
    const key = signingKeyFromPem(readFileSync(keyFile, "utf8"));
    await store.checkpointMovedHeads(key.keyId, headSigner(key));
    expect(await store.checkpointMovedHeads(key.keyId, headSigner(key))).toBe(0);
    const holder = new pg.Client({ connectionString: svc.databaseUrl });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock($1)", [0x61_75_64_63_6b_70_74n.toString()]);
      expect(await store.checkpointMovedHeads(key.keyId, headSigner(key))).toBeNull();
    } finally {
      await holder.end();
    }
  });
});

describe("offline verification", () => {
  it("accepts an untouched full export, anchored at the checkpoint", () => {
    const r = verify(file("ok.ndjson", exportText));
    expect(r.output).toMatch(/^OK .*tenant verify-t/);
    expect(r.output).toContain("reaches the signed checkpoint");
    expect(r.exitCode).toBe(0);
  });

  it("keeps the event lines byte-identical to an export without manifest", async () => {
    const plain = await exportFile("order=asc&limit=" + (lines().length - 1));
    expect(lines().slice(0, -1).join("\n") + "\n").toBe(plain);
  });

  it("ExportEvents over the RPC carries the same manifest", async () => {
    const connect = TRANSPORTS.find((t) => t.name === "Connect")!;
    const { query } = serviceClients(connect.transport(svc.url, [bearerInterceptor(keys.query)]));
    const chunks: Uint8Array[] = [];
    for await (const r of query.exportEvents({ order: SortOrder.ASCENDING, format: ExportFormat.NDJSON, manifest: true }))
      chunks.push(r.chunk);
    const r = verify(file("rpc.ndjson", Buffer.concat(chunks).toString()));
    expect(r.output).toMatch(/^OK /);
    expect(r.exitCode).toBe(0);
  });

  it("accepts a filtered export, saying it is not a contiguous range", async () => {
    const r = verify(file("filtered.ndjson", await exportFile("action=invoice.billed&manifest=true")));
    expect(r.output).toContain("filtered export");
    expect(r.exitCode).toBe(0);
  });

  it("names the event whose field was altered by one byte", () => {
    const ls = lines();
    const i = lineOfSequence(ls, 7);
    ls[i] = ls[i]!.replace("event number 6 ", "event number 9 ");
    const r = verify(file("altered.ndjson", ls.join("\n") + "\n"));
    expect(r.exitCode).toBe(1);
    expect(r.output).toContain("FAILED (altered: sequence 7, id vf-6");
  });

  it("names a removed event by its sequence", () => {
    const ls = lines();
    ls.splice(lineOfSequence(ls, 12), 1);
    const r = verify(file("removed.ndjson", ls.join("\n") + "\n"));
    expect(r.exitCode).toBe(1);
    expect(r.output).toContain("FAILED (missing: sequence 12");
  });

  it("names a swapped pair", () => {
    const ls = lines();
    const i = lineOfSequence(ls, 20);
    [ls[i], ls[i + 1]] = [ls[i + 1]!, ls[i]!];
    const r = verify(file("swapped.ndjson", ls.join("\n") + "\n"));
    expect(r.exitCode).toBe(1);
    expect(r.output).toContain("FAILED (reordered: sequence 21, id vf-20");
  });

  it("refuses a checkpoint signed by another key, and one whose signature does not match", () => {
    const cp = parseCheckpointDocument(readFileSync(checkpointFile, "utf8"));
    const other = signingKeyFromPem(generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString());
    const byOther = { ...cp, keyId: other.keyId };
    const signedByOther = {
      ...byOther,
      signature: sign(null, Buffer.from(checkpointPayload(byOther)), other.privateKey).toString("base64"),
    };
    const r1 = verify(file("ok2.ndjson", exportText), file("other-cp.json", checkpointDocument(signedByOther)));
    expect(r1.exitCode).toBe(1);
    expect(r1.output).toContain("signed by another key");
    // Same key id, signature by another key: refused too.
    const forged = { ...cp, signature: sign(null, Buffer.from(checkpointPayload(cp)), other.privateKey).toString("base64") };
    const r2 = verify(file("ok3.ndjson", exportText), file("forged-cp.json", checkpointDocument(forged)));
    expect(r2.exitCode).toBe(1);
    expect(r2.output).toContain("signature does not match");
  });

  it("refuses a manifest whose signature does not match its content", () => {
    const ls = lines();
    const last = ls.length - 1;
    ls[last] = ls[last]!.replace(/"count":"(\d+)"/, (_, n) => `"count":"${Number(n) - 1}"`);
    const r = verify(file("manifest.ndjson", ls.join("\n") + "\n"));
    expect(r.exitCode).toBe(1);
    expect(r.output).toContain("the manifest's signature does not match");
  });

  it("runs as a command: exit 0 on an untouched export, 1 on a tampered one, 2 on bad usage", async () => {
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, ["scripts/verify.ts", ...args], { cwd: join(import.meta.dirname, "../..") }).then(
        (r) => ({ code: 0, out: r.stdout }),
        (e: { code: number; stderr: string }) => ({ code: e.code, out: e.stderr }),
      );
    const ok = await run([file("cli.ndjson", exportText), "--checkpoint", checkpointFile, "--public-key", publicKeyFile]);
    expect(ok).toMatchObject({ code: 0, out: expect.stringMatching(/^OK /) });
    const ls = lines();
    ls.splice(lineOfSequence(ls, 3), 1);
    const bad = await run([file("cli-bad.ndjson", ls.join("\n") + "\n"), "--checkpoint", checkpointFile, "--public-key", publicKeyFile]);
    expect(bad).toMatchObject({ code: 1, out: expect.stringContaining("FAILED (missing: sequence 3") });
    const usage = await run([file("cli-usage.ndjson", exportText)]);
    expect(usage).toMatchObject({ code: 2, out: expect.stringContaining("usage:") });
  });
});
