// Offline verification of a tenant's archives as downloaded from the bucket:
// a tenant is archived by the real retention job into the real
// S3-compatible server (s3proxy), its objects and manifests are downloaded
// into a folder, and `npm run verify -- --archives` runs as a child process
// (no service, no database). It accepts the untouched folder, alone and
// followed by an export of the live rows, and names an altered byte, a
// removed object, a removed event, a swapped pair and a checkpoint signed by
// another key.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { gunzipSync, gzipSync } from "node:zlib";
import { generateKeyPairSync } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ArchiveStore } from "../../src/archive/object-store.ts";
import { checkpointDocument, signCheckpoint } from "../../src/domain/checkpoint.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { ManifestBuilder, manifestLine } from "../../src/domain/export-manifest.ts";
import { sha256Hex } from "../../src/domain/retention.ts";
import { publicKeyPem, type SigningKey, signingKeyFromPem } from "../../src/domain/signing.ts";
import { microsFromDate } from "../../src/domain/timestamp.ts";
import { RetentionJob } from "../../src/lifecycle/retention-job.ts";
import { createLogger } from "../../src/platform/log.ts";
import { migrate } from "../../src/store/migrate.ts";
import { ensurePartitions } from "../../src/store/partitions.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../src/store/event-rows.ts";
import { RetentionStore } from "../../src/store/retention-store.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { freshDatabase } from "../support/db.ts";
import { archiveStoreForTests, DAY, writeEvents } from "../support/lifecycle.ts";

const log = createLogger({ level: "warn", stream: process.stderr });
const NOW = new Date(Date.UTC(2026, 10, 30, 12));
const TENANT = "arch-verify";
// Three old batches of 700 (expired with keep_days 19), one recent of 300: 2,100 archived in windows of 500, 300 live.
const OLD = 2_100;
const TOTAL = 2_400;
const repo = join(import.meta.dirname, "../..");

const newKey = (): SigningKey =>
  signingKeyFromPem(generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString());

let db: { url: string; drop: () => Promise<void> };
let pool: pg.Pool;
let archive: ArchiveStore;
const key = newKey();
const work = mkdtempSync(join(tmpdir(), "auditlog-archive-verify-"));
const pristine = join(work, "download");
const file = (name: string, text: string | Buffer) => {
  const p = join(work, name);
  writeFileSync(p, text);
  return p;
};
const hashes = new Map<number, string>();
const checkpointFile = (seq: number, signer = key, name = `checkpoint-${seq}.json`) =>
  file(
    name,
    checkpointDocument(
      signCheckpoint(signer, { tenantId: TENANT, sequence: BigInt(seq), hash: hashes.get(seq)!, createdAt: microsFromDate(NOW) }),
    ),
  );
let publicKey: string;
let liveExport: string;
let windows: string[];

/** `npm run verify -- …` as a child process, on the project's Node (npx node). */
async function cli(args: string[]): Promise<{ code: number; out: string }> {
  return promisify(execFile)("npx", ["node", "scripts/verify.ts", ...args], { cwd: repo }).then(
    (r) => ({ code: 0, out: r.stdout }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stderr + e.stdout }),
  );
}

/** A fresh copy of the downloaded folder, changed by `tamper`. */
function copy(name: string, tamper: (dir: string) => void): string {
  const dir = join(work, name);
  cpSync(pristine, dir, { recursive: true });
  tamper(dir);
  return dir;
}

/** Rewrites an object's NDJSON lines (manifest line last) and, as an attacker would, its manifest's SHA-256. */
function rewriteObject(dir: string, objectPath: string, edit: (lines: string[]) => string[]): void {
  const p = join(dir, objectPath);
  const lines = gunzipSync(readFileSync(p)).toString("utf8").split("\n").filter(Boolean);
  const body = gzipSync(Buffer.from(`${edit(lines).join("\n")}\n`));
  writeFileSync(p, body);
  const m = JSON.parse(readFileSync(`${p}.manifest.json`, "utf8"));
  writeFileSync(`${p}.manifest.json`, JSON.stringify({ ...m, sha256: sha256Hex(body) }));
}

const lineOf = (lines: string[], seq: number) => lines.findIndex((l) => l.includes(`"sequence":"${seq}"`));
/** The window holding `seq` (relative path of its object). */
const windowOf = (seq: number) => windows.find((w) => w.includes(`${String(Math.floor((seq - 1) / 500) * 500 + 1).padStart(20, "0")}-`))!;

beforeAll(async () => {
  db = await freshDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  await migrate(pool);
  await ensurePartitions(pool, new Date(NOW.getTime() - 31 * DAY), 2);
  await new TenantStore(pool).create(TENANT, "Archive verify");
  for (let b = 0; b < 3; b++) {
    await writeEvents(pool, TENANT, b * 700, 700, new Date(NOW.getTime() - (30 - b) * DAY), (i) => `user-${i % 13}`);
  }
  await writeEvents(pool, TENANT, OLD, TOTAL - OLD, new Date(NOW.getTime() - DAY), (i) => `user-${i % 13}`);
  for (const r of (await pool.query<{ sequence: string; hash: string }>("SELECT sequence, hash FROM events WHERE tenant_id = $1", [TENANT]))
    .rows) {
    hashes.set(Number(r.sequence), r.hash);
  }

  const objectPrefix = `test-archive-verify-${randomBytes(3).toString("hex")}/`;
  archive = archiveStoreForTests(objectPrefix);
  await archive.ensureBucket();
  const store = new RetentionStore(pool);
  await store.setPolicy(TENANT, { searchableDays: 15, keepDays: 19 });
  const round = await new RetentionJob({
    pool,
    store,
    archive,
    search: null,
    log,
    now: () => NOW,
    batchSize: 500,
    signingKey: key,
  }).runOnce();
  expect(round).toMatchObject({ archivesWritten: 5, eventsArchived: OLD, eventsDeleted: OLD });

  // The download: every object under the tenant's prefix, into a folder laid out as the bucket is.
  for (const k of await archive.list(objectPrefix)) {
    const p = join(pristine, k.slice(objectPrefix.length));
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, (await archive.get(k))!);
  }
  windows = (await archive.list(objectPrefix)).filter((k) => k.endsWith(".ndjson.gz")).map((k) => k.slice(objectPrefix.length));
  expect(windows).toHaveLength(5);

  // The live rows, exported with a signed manifest as GET /v1/export?order=asc&manifest=true writes them.
  const rows = (await pool.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 ORDER BY sequence`, [TENANT])).rows;
  expect(rows).toHaveLength(TOTAL - OLD);
  const b = new ManifestBuilder({ tenantId: TENANT, order: "asc", complete: true });
  let text = "";
  for (const row of rows) {
    const r = recordFromRow(row);
    const line = ndjsonLineOfRecord(r);
    b.add(r, line);
    text += line;
  }
  liveExport = file("live.ndjson", text + manifestLine(b.sign(key, microsFromDate(NOW))));
  publicKey = file("public.pem", publicKeyPem(key.publicKey));
}, 300_000);

afterAll(async () => {
  archive?.close();
  await pool?.end();
  await db?.drop();
  rmSync(work, { recursive: true, force: true });
});

describe("npm run verify -- --archives", () => {
  it("accepts the untouched folder against a checkpoint inside it, and followed by the live rows up to the head", async () => {
    const alone = await cli(["--archives", pristine, "--checkpoint", checkpointFile(1200), "--public-key", publicKey]);
    expect(alone.code, alone.out).toBe(0);
    expect(alone.out).toMatch(/^OK .*: tenant arch-verify, 5 archive windows, 2100 events, sequences 1\.\.2100/);
    expect(alone.out).toContain("reaches the signed checkpoint at sequence 1200");
    expect(alone.out).toContain("sequences 1201..2100 come after the checkpoint");
    const whole = await cli([
      "--archives",
      pristine,
      "--export",
      liveExport,
      "--checkpoint",
      checkpointFile(TOTAL),
      "--public-key",
      publicKey,
    ]);
    expect(whole.code, whole.out).toBe(0);
    expect(whole.out).toContain("then");
    expect(whole.out).toContain("300 events, sequences 2101..2400");
    // From a signed checkpoint as the anchor: the windows after it only.
    const from = await cli([
      "--archives",
      pristine,
      "--from",
      checkpointFile(500),
      "--checkpoint",
      checkpointFile(1200),
      "--public-key",
      publicKey,
    ]);
    expect(from.code, from.out).toBe(0);
    expect(from.out).toContain("4 archive windows, 1600 events, sequences 501..2100");
  });

  it("names an altered byte: in an event (the object re-compressed, its manifest's SHA-256 updated) and in the stored object", async () => {
    const w = windowOf(700);
    const inEvent = copy("altered-event", (dir) =>
      rewriteObject(dir, w, (ls) => {
        const i = lineOf(ls, 700);
        ls[i] = ls[i]!.replace("invoice billed by user-", "invoice billed by user_");
        return ls;
      }),
    );
    const r = await cli(["--archives", inEvent, "--checkpoint", checkpointFile(1200), "--public-key", publicKey]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain(`FAILED (altered: sequence 700, id ev-699, line 200, in ${w})`);

    const inObject = copy("altered-object", (dir) => {
      const p = join(dir, w);
      const body = readFileSync(p);
      body[Math.floor(body.length / 2)] ^= 0x01;
      writeFileSync(p, body);
    });
    const o = await cli(["--archives", inObject, "--checkpoint", checkpointFile(1200), "--public-key", publicKey]);
    expect(o.code, o.out).toBe(1);
    expect(o.out).toMatch(new RegExp(`FAILED \\(altered: sequence 501, in ${w.replace(/[.]/g, "\\.")}\\)`));
  });

  it("names a removed object, and the sequences of a removed window", async () => {
    const w = windowOf(1001);
    const object = copy("removed-object", (dir) => rmSync(join(dir, w)));
    const r = await cli(["--archives", object, "--checkpoint", checkpointFile(1200), "--public-key", publicKey]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain(`FAILED (missing: sequence 1001, in ${w})`);
    expect(r.out).toContain(`archive object ${w} (sequences 1001..1500) is missing`);

    const window = copy("removed-window", (dir) => {
      rmSync(join(dir, w));
      rmSync(join(dir, `${w}.manifest.json`));
    });
    const v = await cli(["--archives", window, "--checkpoint", checkpointFile(1200), "--public-key", publicKey]);
    expect(v.code, v.out).toBe(1);
    expect(v.out).toContain("FAILED (missing: sequence 1001)");
    expect(v.out).toContain("sequences 1001..1500 missing");
  });

  it("names a removed event and a swapped pair by sequence", async () => {
    const w = windowOf(1234);
    const removed = copy("removed-event", (dir) => rewriteObject(dir, w, (ls) => ls.filter((_, i) => i !== lineOf(ls, 1234))));
    const r = await cli(["--archives", removed, "--checkpoint", checkpointFile(1200), "--public-key", publicKey]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain(`FAILED (missing: sequence 1234, line 234, in ${w})`);

    const swapped = copy("swapped-pair", (dir) =>
      rewriteObject(dir, w, (ls) => {
        const i = lineOf(ls, 1234);
        [ls[i], ls[i + 1]] = [ls[i + 1]!, ls[i]!];
        return ls;
      }),
    );
    const s = await cli(["--archives", swapped, "--checkpoint", checkpointFile(1200), "--public-key", publicKey]);
    expect(s.code, s.out).toBe(1);
    expect(s.out).toContain(`FAILED (reordered: sequence 1235, id ev-1234, line 234, in ${w})`);
    expect(s.out).toContain("sequence 1234 should come first");
  });

  it("refuses a checkpoint signed by another key, and the archives against another public key", async () => {
    const other = newKey();
    const r = await cli([
      "--archives",
      pristine,
      "--checkpoint",
      checkpointFile(1200, other, "other-checkpoint.json"),
      "--public-key",
      publicKey,
    ]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain("FAILED (checkpoint)");
    expect(r.out).toContain("signed by another key");
    const otherPublic = file("other-public.pem", publicKeyPem(other.publicKey));
    const k = await cli([
      "--archives",
      pristine,
      "--checkpoint",
      checkpointFile(1200, other, "other-checkpoint.json"),
      "--public-key",
      otherPublic,
    ]);
    expect(k.code, k.out).toBe(1);
    expect(k.out).toContain("FAILED (manifest: sequence 1");
  });

  it("answers a usage error with exit code 2", async () => {
    const r = await cli(["--archives", pristine, "--public-key", publicKey]);
    expect(r).toMatchObject({ code: 2, out: expect.stringContaining("usage:") });
    const missing = await cli(["--archives", join(work, "nowhere"), "--checkpoint", checkpointFile(1200), "--public-key", publicKey]);
    expect(missing).toMatchObject({ code: 2, out: expect.stringContaining("--archives") });
  });
});
