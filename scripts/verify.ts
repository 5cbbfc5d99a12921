// Offline verification against a signed checkpoint (docs/HASH_CHAIN.md,
// "Offline verification"): no service, no database, only src/domain.
//
//   npm run verify -- <export.ndjson> --checkpoint <checkpoint.json> --public-key <key.pem>
//   npm run verify -- --archives <dir> [--export <live.ndjson>] [--from <sequence>:<hash> | --from <checkpoint.json>]
//                     --checkpoint <checkpoint.json> --public-key <key.pem> [--public-key <older-key.pem> ...]
//
// <export.ndjson>: an NDJSON export made with manifest=true (its last line is
// the signed manifest). <checkpoint.json>: a checkpoint document
// (ListCheckpoints/CreateCheckpoint `document`). <key.pem>: the service's
// public key (GET /v1/checkpoint-key), obtained and pinned independently;
// repeat --public-key for keys the service signed with before a rotation.
// <dir>: a tenant's archive objects and `.manifest.json` files as downloaded
// from the bucket; --export: a complete export of the live rows that
// continues them; --from: verify the windows after this point of the chain
// (a sequence and its hash, or a signed checkpoint) instead of from sequence 1.
//
// Exit codes: 0 verified; 1 verification failed (the first altered, missing
// or reordered event is named by sequence and id, the object or window at
// fault by its path, or the checkpoint or manifest is refused); 2 usage (bad
// arguments, unreadable files).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { KeyObject } from "node:crypto";
import type { ArchiveAnchor } from "../src/domain/archive-chain.ts";
import { type ArchiveFolderResult, verifyArchiveFolder } from "../src/domain/archive-folder-verification.ts";
import { checkpointProblem, parseCheckpointDocument, type SignedCheckpoint } from "../src/domain/checkpoint.ts";
import {
  readNdjsonExport,
  type StoredEventsInput,
  type VerificationFailure,
  type VerificationResult,
  verifyStoredEvents,
} from "../src/domain/offline-verification.ts";
import { keyIdOf, publicKeyFromPem } from "../src/domain/signing.ts";
import { readArchiveFolder } from "./archive-folder.ts";

export const USAGE = [
  "usage: npm run verify -- <export.ndjson> --checkpoint <checkpoint.json> --public-key <key.pem>",
  "       npm run verify -- --archives <dir> [--export <live.ndjson>] [--from <sequence>:<hash> | --from <checkpoint.json>]",
  "                         --checkpoint <checkpoint.json> --public-key <key.pem> [--public-key <older-key.pem> ...]",
].join("\n");

export type VerifyRun = { exitCode: 0 | 1 | 2; output: string };

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${what} ${path}: ${(err as Error).message}`);
  }
}

class UsageError extends Error {}

function parse<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new UsageError(`${what}: ${(err as Error).message}`);
  }
}

function failed(f: VerificationFailure & { object?: string }): VerifyRun {
  const where = [
    f.sequence !== null ? `sequence ${f.sequence}` : "",
    f.eventId ? `id ${f.eventId}` : "",
    f.position !== null ? `line ${f.position}` : "",
    f.object ? `in ${f.object}` : "",
  ].filter(Boolean);
  return { exitCode: 1, output: `FAILED (${f.kind}${where.length ? `: ${where.join(", ")}` : ""})\n  ${f.reason}\n` };
}

function report(file: string, cp: SignedCheckpoint, r: VerificationResult): VerifyRun {
  if (!r.ok) return failed(r.failure);
  const lines = [
    `OK ${file}: tenant ${r.tenantId}, ${r.count} events, sequences ${r.firstSequence}..${r.lastSequence}`,
    r.complete
      ? "  complete range: every event's hash recomputes and each links to the one before; none missing, none reordered"
      : "  filtered export: every event's hash recomputes and the file matches its signed manifest; it is not a contiguous range",
    r.anchoredAt !== null
      ? `  reaches the signed checkpoint at sequence ${cp.sequence} (${cp.hash}, key ${cp.keyId})`
      : `  the checkpoint (sequence ${cp.sequence}) is not in this file: the events are vouched for by the manifest's signature only`,
  ];
  return { exitCode: 0, output: `${lines.join("\n")}\n` };
}

function reportArchives(dir: string, exportFile: string | undefined, cp: SignedCheckpoint, r: ArchiveFolderResult): VerifyRun {
  if (!r.ok) return failed(r.failure);
  const start = r.from.sequence === 0n ? "from sequence 1" : `from the anchor at sequence ${r.from.sequence} (${r.from.hash})`;
  const lines = [
    `OK ${dir}: tenant ${r.tenantId}, ${r.windows} archive windows, ${r.archivedEvents} events, sequences ${r.from.sequence + 1n}..${r.archivedTo}` +
      (r.live ? `, then ${exportFile}: ${r.live.count} events, sequences ${r.live.firstSequence}..${r.live.lastSequence}` : ""),
    `  ${start}: every window links to the one before it with no gap or overlap, every object has its manifest's SHA-256 and a valid signed manifest, every event's hash recomputes; none missing, none reordered`,
    `  reaches the signed checkpoint at sequence ${cp.sequence} (${cp.hash}, key ${cp.keyId})`,
  ];
  const end = r.live ? r.live.lastSequence : r.archivedTo;
  if (end > r.anchoredAt) {
    lines.push(
      `  sequences ${r.anchoredAt + 1n}..${end} come after the checkpoint: vouched for by their signed manifests, not by the checkpoint`,
    );
  }
  if (r.otherTenants) lines.push(`  left aside: ${r.otherTenants} manifests of other tenants`);
  if (r.beforeFrom) lines.push(`  left aside: ${r.beforeFrom} windows that end at or before the anchor`);
  if (r.strayObjects.length) lines.push(`  left aside: objects without a manifest: ${r.strayObjects.join(", ")}`);
  return { exitCode: 0, output: `${lines.join("\n")}\n` };
}

const OPTIONS = {
  checkpoint: { type: "string" },
  "public-key": { type: "string", multiple: true },
  archives: { type: "string" },
  export: { type: "string" },
  from: { type: "string" },
} as const;

/** --from: `<sequence>:<hash>` as given, or a signed checkpoint document of the same tenant, checked with the keys. */
function anchorOf(arg: string, keys: readonly KeyObject[], tenantId: string): ArchiveAnchor {
  const literal = /^(\d{1,19}):([0-9a-f]{64})$/.exec(arg);
  if (literal) return { sequence: BigInt(literal[1]!), hash: literal[2]! };
  const cp = parse("--from", () => parseCheckpointDocument(read(arg, "--from").toString("utf8")));
  const key = keys.find((k) => keyIdOf(k) === cp.keyId) ?? keys[0]!;
  const problem = checkpointProblem(key, cp);
  if (problem) throw new UsageError(`--from ${arg}: ${problem}`);
  if (cp.tenantId !== tenantId) throw new UsageError(`--from ${arg}: tenant "${cp.tenantId}"'s checkpoint, not "${tenantId}"'s`);
  return { sequence: cp.sequence, hash: cp.hash };
}

/** The command, without touching the process: arguments in, exit code and text out. */
export function runVerify(argv: string[]): VerifyRun {
  try {
    let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    const keyFiles = values["public-key"] ?? [];
    if (!values.checkpoint || keyFiles.length === 0) throw new UsageError("--checkpoint and --public-key are required");
    if (values.archives !== undefined ? positionals.length !== 0 : positionals.length !== 1 || values.export || values.from) {
      throw new UsageError("one export file, or --archives <dir> (with --export for the live rows)");
    }
    const keys = keyFiles.map((f) => parse("--public-key", () => publicKeyFromPem(read(f, "--public-key").toString("utf8"))));
    const checkpoint = parse("--checkpoint", () => parseCheckpointDocument(read(values.checkpoint!, "--checkpoint").toString("utf8")));
    const keyOfCheckpoint = keys.find((k) => keyIdOf(k) === checkpoint.keyId) ?? keys[0]!;

    if (values.archives === undefined) {
      const file = positionals[0]!;
      const input: StoredEventsInput = parse(file, () => readNdjsonExport(read(file, "export")));
      return report(file, checkpoint, verifyStoredEvents(input, checkpoint, keyOfCheckpoint));
    }
    const dir = values.archives;
    const folder = parse("--archives", () => readArchiveFolder(dir));
    const exportFile = values.export;
    const live = exportFile ? parse("--export", () => readNdjsonExport(read(exportFile, "--export"))) : undefined;
    const from = values.from ? anchorOf(values.from, keys, checkpoint.tenantId) : undefined;
    return reportArchives(dir, exportFile, checkpoint, verifyArchiveFolder({ ...folder, live, from }, checkpoint, keys));
  } catch (err) {
    if (err instanceof UsageError) return { exitCode: 2, output: `verify: ${err.message}\n${USAGE}\n` };
    throw err;
  }
}

if (import.meta.main) {
  const r = runVerify(process.argv.slice(2));
  (r.exitCode === 0 ? process.stdout : process.stderr).write(r.output);
  process.exitCode = r.exitCode;
}
