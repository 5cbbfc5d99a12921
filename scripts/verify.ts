// Offline verification of an export against a signed checkpoint
// (docs/HASH_CHAIN.md, "Offline verification"): no service, no database,
// only src/domain.
//
//   npm run verify -- <export.ndjson> --checkpoint <checkpoint.json> --public-key <key.pem>
//
// <export.ndjson>: an NDJSON export made with manifest=true (its last line is
// the signed manifest). <checkpoint.json>: a checkpoint document
// (ListCheckpoints/CreateCheckpoint `document`). <key.pem>: the service's
// public key (GET /v1/checkpoint-key), obtained and pinned independently.
//
// Exit codes: 0 verified; 1 verification failed (the first altered, missing
// or reordered event is named by sequence and id, or the checkpoint or
// manifest is refused); 2 usage (bad arguments, unreadable files).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseCheckpointDocument, type SignedCheckpoint } from "../src/domain/checkpoint.ts";
import {
  readNdjsonExport,
  type StoredEventsInput,
  type VerificationResult,
  verifyStoredEvents,
} from "../src/domain/offline-verification.ts";
import { publicKeyFromPem } from "../src/domain/signing.ts";

export const USAGE = "usage: npm run verify -- <export.ndjson> --checkpoint <checkpoint.json> --public-key <key.pem>";

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

function report(file: string, cp: SignedCheckpoint, r: VerificationResult): VerifyRun {
  if (!r.ok) {
    const f = r.failure;
    const where = [
      f.sequence !== null ? `sequence ${f.sequence}` : "",
      f.eventId ? `id ${f.eventId}` : "",
      f.position !== null ? `line ${f.position}` : "",
    ].filter(Boolean);
    return { exitCode: 1, output: `FAILED (${f.kind}${where.length ? `: ${where.join(", ")}` : ""})\n  ${f.reason}\n` };
  }
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

/** The command, without touching the process: arguments in, exit code and text out. */
export function runVerify(argv: string[]): VerifyRun {
  try {
    let parsed: ReturnType<
      typeof parseArgs<{ options: { checkpoint: { type: "string" }; "public-key": { type: "string" } }; allowPositionals: true }>
    >;
    try {
      parsed = parseArgs({
        args: argv,
        options: { checkpoint: { type: "string" }, "public-key": { type: "string" } },
        allowPositionals: true,
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1 || !values.checkpoint || !values["public-key"])
      throw new UsageError("one file, --checkpoint and --public-key are required");
    const file = positionals[0]!;
    const publicKey = parse("--public-key", () => publicKeyFromPem(read(values["public-key"]!, "--public-key").toString("utf8")));
    const checkpoint = parse("--checkpoint", () => parseCheckpointDocument(read(values.checkpoint!, "--checkpoint").toString("utf8")));
    const input: StoredEventsInput = parse(file, () => readNdjsonExport(read(file, "export")));
    return report(file, checkpoint, verifyStoredEvents(input, checkpoint, publicKey));
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
