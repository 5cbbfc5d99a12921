// The pure parts of the data lifecycle: retention policies and cutoffs, the
// expired prefix, archive objects (encode, decode, check), erasure of a
// record and the chain over erased events, their NDJSON lines; and the
// AdminService handlers' answers to bad policies, without an archive, and
// without the lifecycle set up.
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService, SetRetentionPolicyRequestSchema } from "../../gen/auditlog/v1/admin_pb.js";
import { type Principal, principalKey } from "../../src/auth/principal.ts";
import { erasedRecord, fieldValue, subjectHash } from "../../src/domain/erasure.ts";
import { type StoredRecord, storedEventFromRecord } from "../../src/domain/event-record.ts";
import { ndjsonLine, ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { ChainVerifier, chainHash, contentHash, GENESIS_HASH } from "../../src/domain/hash-chain.ts";
import { recordFromNdjsonLine } from "../../src/domain/offline-verification.ts";
import { archiveObjectKey, checkPolicy, cutoff, expiredPrefixLength, RetentionPolicyError } from "../../src/domain/retention.ts";
import { microsFromDate } from "../../src/domain/timestamp.ts";
import { archiveProblem, decodeArchive, encodeArchive } from "../../src/lifecycle/archive-object.ts";
import { dataLifecycleAdmin } from "../../src/services/data-lifecycle-admin.ts";

const T0 = Date.UTC(2026, 0, 15);

/** A valid chain of n events of one tenant, received one hour apart from T0. */
function chain(n: number, actor = (i: number) => `user-${i % 3}`): StoredRecord[] {
  const out: StoredRecord[] = [];
  let prev = GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const base = {
      tenantId: "t1",
      id: `ev-${i}`,
      occurredAt: microsFromDate(new Date(T0 + i * 1000)),
      receivedAt: microsFromDate(new Date(T0 + i * 3_600_000)),
      sequence: BigInt(i),
      action: "user.login",
      actor: { id: actor(i), type: "USER" as const, name: `Name ${actor(i)}`, ip: "10.0.0.1", userAgent: "ua", sessionId: "s" },
      target: i % 2 ? { type: "doc", id: `d-${i}`, name: "Doc" } : null,
      outcome: "SUCCESS" as const,
      severity: "INFO" as const,
      context: { requestId: `r-${i}`, traceId: "", source: "app", location: "Berlin" },
      changes: i % 3 === 0 ? { before: { email: `${actor(i)}@x.org` }, after: null } : null,
      metadata: { who: actor(i) },
      message: `login of ${actor(i)}`,
      contentHash: "",
      hash: "",
      prevHash: prev,
    };
    base.contentHash = contentHash(base);
    base.hash = chainHash(prev, base);
    prev = base.hash;
    out.push(base);
  }
  return out;
}

function verifies(records: StoredRecord[]): boolean {
  const v = new ChainVerifier(records[0]!.sequence, records[0]!.prevHash);
  return records.every((r) => v.next(r) === null);
}

describe("retention policies", () => {
  it("accepts forever, a search window alone, and both periods with an archive", () => {
    expect(() => checkPolicy({ searchableDays: 0, keepDays: 0 }, false)).not.toThrow();
    expect(() => checkPolicy({ searchableDays: 90, keepDays: 0 }, false)).not.toThrow();
    expect(() => checkPolicy({ searchableDays: 90, keepDays: 2555 }, true)).not.toThrow();
  });

  it("names the field at fault", () => {
    const fieldOf = (p: { searchableDays: number; keepDays: number }, archive: boolean) => {
      try {
        checkPolicy(p, archive);
        return null;
      } catch (err) {
        expect(err).toBeInstanceOf(RetentionPolicyError);
        return (err as RetentionPolicyError).field;
      }
    };
    expect(fieldOf({ searchableDays: 100, keepDays: 30 }, true)).toBe("searchable_days");
    expect(fieldOf({ searchableDays: 0, keepDays: 30 }, true)).toBe("searchable_days");
    expect(fieldOf({ searchableDays: 10, keepDays: 30 }, false)).toBe("keep_days");
    expect(fieldOf({ searchableDays: -1, keepDays: 0 }, true)).toBe("searchable_days");
    expect(fieldOf({ searchableDays: 1, keepDays: 40_000 }, true)).toBe("keep_days");
  });

  it("computes cutoffs in whole days, none for forever", () => {
    const now = new Date(T0);
    expect(cutoff(now, 0)).toBeNull();
    expect(cutoff(now, 2)).toEqual(new Date(T0 - 2 * 86_400_000));
  });

  it("takes the expired prefix only: an expired event after a younger one waits", () => {
    const records = chain(10);
    const before = new Date(T0 + 5.5 * 3_600_000); // events 1..5 are older
    expect(expiredPrefixLength(records, before)).toBe(5);
    const swapped = [...records];
    swapped[1] = { ...swapped[1]!, receivedAt: microsFromDate(new Date(T0 + 100 * 3_600_000)) };
    expect(expiredPrefixLength(swapped, before)).toBe(1);
    expect(expiredPrefixLength([], before)).toBe(0);
  });

  it("keys objects by tenant, month and zero-padded range", () => {
    const [first] = chain(1);
    expect(archiveObjectKey("p/", "acme co", first!, 12n)).toBe("p/acme%20co/2026-01/00000000000000000001-00000000000000000012.ndjson.gz");
  });
});

describe("archive objects", () => {
  it("round-trip and check: digest, count, range and chain", () => {
    const records = chain(50);
    const { body, manifest } = encodeArchive("k", records);
    expect(manifest).toMatchObject({ count: 50n, firstSequence: 1n, lastSequence: 50n, firstPrevHash: GENESIS_HASH, erased: [] });
    expect(manifest.lastHash).toBe(records[49]!.hash);
    expect(archiveProblem(body, manifest)).toBeNull();
    expect(decodeArchive(body).map((r) => r.id)).toEqual(records.map((r) => r.id));
  });

  it("refuses an object that is not the manifest's", () => {
    const { body, manifest } = encodeArchive("k", chain(5));
    const flipped = Uint8Array.from(body);
    flipped[flipped.length - 10]! ^= 1;
    expect(archiveProblem(flipped, manifest)).toMatch(/SHA-256/);
    const altered = chain(5);
    altered[2] = { ...altered[2]!, message: "changed" };
    const other = encodeArchive("k", altered);
    expect(archiveProblem(other.body, { ...manifest, sha256: other.manifest.sha256 })).toMatch(/sequence 3 does not verify/);
    const foreign = encodeArchive(
      "k",
      chain(5, () => "x"),
    );
    expect(archiveProblem(foreign.body, { ...manifest, sha256: foreign.manifest.sha256 })).toMatch(/last event is not/);
    expect(archiveProblem(body, { ...manifest, count: 6n })).toMatch(/holds 5 events/);
  });
});

describe("erasure", () => {
  it("leaves no personal field and keeps the chain verifiable", () => {
    const records = chain(9);
    const erased = records.map((r) => (fieldValue(r, "actor.id") === "user-1" ? erasedRecord(r) : r));
    const gone = erased.filter((r) => r.erased);
    expect(gone).toHaveLength(3);
    expect(JSON.stringify(gone, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toMatch(/user-1|Berlin|Name/);
    expect(verifies(erased)).toBe(true);
    // Not marked erased, the same blank content would be "content altered".
    const unmarked = erased.map((r) => ({ ...r, erased: undefined }));
    expect(verifies(unmarked)).toBe(false);
  });

  it("erased NDJSON lines carry the content hash, equal the proto3 JSON, and read back", () => {
    const r = erasedRecord(chain(3)[2]!);
    const line = ndjsonLineOfRecord(r);
    expect(line).toBe(ndjsonLine(storedEventFromRecord(r)));
    expect(line).toContain(`"contentHash":"${r.contentHash}","erased":true}`);
    expect(recordFromNdjsonLine(line.trimEnd())).toMatchObject({ erased: true, contentHash: r.contentHash, hash: r.hash });
    // A line that is not erased stays as it was: no contentHash, no erased.
    expect(ndjsonLineOfRecord(chain(1)[0]!)).not.toMatch(/contentHash|erased/);
  });

  it("salts the subject hash with the erasure id", () => {
    expect(subjectHash("e1", "actor.id", "alice")).toMatch(/^[0-9a-f]{64}$/);
    expect(subjectHash("e1", "actor.id", "alice")).not.toBe(subjectHash("e2", "actor.id", "alice"));
  });
});

describe("AdminService retention handlers", () => {
  const asOperator: Interceptor = (next) => (req) => {
    req.contextValues.set(principalKey, { kind: "operator" } as Principal);
    return next(req);
  };
  const client = (archiveConfigured: boolean | null) => {
    const set: unknown[] = [];
    const deps =
      archiveConfigured === null
        ? null
        : {
            validator: createValidator(),
            tenants: { exists: async () => true },
            retention: { setPolicy: async (_t: string, p: unknown) => (set.push(p), true) } as never,
            erasure: {} as never,
            restore: {} as never,
            archiveConfigured,
            submit: (() => {
              throw new Error("not used");
            }) as never,
          };
    const handlers = dataLifecycleAdmin(deps, (_ctx, requested) => requested);
    const transport = createRouterTransport(({ service }) => service(AdminService, handlers as never), {
      router: { interceptors: [asOperator] },
    });
    return { admin: createClient(AdminService, transport), set };
  };
  const request = (searchableDays: number, keepDays: number) =>
    create(SetRetentionPolicyRequestSchema, { tenantId: "t1", policy: { searchableDays, keepDays } });
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );

  it("sets a valid policy", async () => {
    const { admin, set } = client(true);
    const res = await admin.setRetentionPolicy(request(90, 365));
    expect(res.policy).toMatchObject({ searchableDays: 90, keepDays: 365 });
    expect(set).toEqual([{ searchableDays: 90, keepDays: 365 }]);
  });

  it("refuses keep_days without an archive (FAILED_PRECONDITION) and names a bad field (INVALID_ARGUMENT)", async () => {
    const noArchive = client(false);
    const e1 = await codeOf(noArchive.admin.setRetentionPolicy(request(10, 30)));
    expect(e1?.code).toBe(Code.FailedPrecondition);
    expect(e1?.message).toMatch(/AUDITLOG_ARCHIVE_S3_BUCKET/);
    expect(noArchive.set).toEqual([]);
    const e2 = await codeOf(client(true).admin.setRetentionPolicy(request(100, 30)));
    expect(e2?.code).toBe(Code.InvalidArgument);
    expect(e2?.message).toMatch(/policy\.searchable_days/);
  });

  it("answers UNIMPLEMENTED when the lifecycle is not set up", async () => {
    const e = await codeOf(client(null).admin.setRetentionPolicy(request(1, 0)));
    expect(e?.code).toBe(Code.Unimplemented);
  });
});
