// The pure parts of the data lifecycle: retention policies and cutoffs, the
// expired prefix, archive objects (encode, decode, check), erasure of a
// record and the chain over erased events, their NDJSON lines; and the
// AdminService handlers' answers to bad policies, without an archive, and
// without the lifecycle set up.
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AdminService, EraseSubjectRequestSchema, SetRetentionPolicyRequestSchema } from "../../gen/auditlog/v1/admin_pb.js";
import { type Principal, principalKey } from "../../src/auth/principal.ts";
import {
  ErasureFieldError,
  type ErasureSubject,
  erasedRecord,
  erasureSubject,
  fieldValue,
  matchesSubject,
  subjectField,
  subjectHash,
} from "../../src/domain/erasure.ts";
import { type StoredRecord, storedEventFromRecord } from "../../src/domain/event-record.ts";
import { ndjsonLine, ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { ChainVerifier, chainHash, contentDigest, contentHash, GENESIS_HASH } from "../../src/domain/hash-chain.ts";
import { recordFromNdjsonLine } from "../../src/domain/offline-verification.ts";
import { archiveObjectKey, checkPolicy, cutoff, expiredPrefixLength, RetentionPolicyError } from "../../src/domain/retention.ts";
import { microsFromDate } from "../../src/domain/timestamp.ts";
import { archiveProblem, decodeArchive, encodeArchive } from "../../src/lifecycle/archive-object.ts";
import { subjectQuery } from "../../src/search/elasticsearch/retention-documents.ts";
import { dataLifecycleAdmin } from "../../src/services/data-lifecycle-admin.ts";
import { chainRecords, fixedSalt, fullEvent } from "./fixtures.ts";

const T0 = Date.UTC(2026, 0, 15);

/** A valid chain of n events of one tenant, received one hour apart from T0, each with a salt. */
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
      salt: fixedSalt("t1", BigInt(i)),
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

  it("destroys the salt: the kept content hash confirms no guess of the content", () => {
    const r = chain(3)[2]!;
    const e = erasedRecord(r);
    expect(e.salt).toBeUndefined();
    expect(e.contentHash).toBe(r.contentHash);
    // Whoever knows (or guesses) every original field cannot rebuild the kept hash without the salt.
    expect(contentDigest(r)).not.toBe(e.contentHash);
    expect(contentHash({ ...r, salt: undefined })).not.toBe(e.contentHash);
    expect(contentHash(r)).toBe(e.contentHash);
    // The export line of an erased event has no salt; that of a salted event has it.
    expect(ndjsonLineOfRecord(e)).not.toMatch(/salt/);
    expect(ndjsonLineOfRecord(r)).toContain(`"salt":"${r.salt}"}`);
    expect(ndjsonLineOfRecord(r)).toBe(ndjsonLine(storedEventFromRecord(r)));
    expect(recordFromNdjsonLine(ndjsonLineOfRecord(r).trimEnd()).salt).toBe(r.salt);
  });

  it("erases events without salt (version 1) and with salt (version 2) in one chain", () => {
    const old = chainRecords([fullEvent({ id: "a" }), fullEvent({ id: "b", actor: { id: "other" } })], { unsalted: true });
    const young = chainRecords([fullEvent({ id: "c" }), fullEvent({ id: "d", actor: { id: "other" } })], {
      prevSequence: 2n,
      prevHash: old[1]!.hash,
    });
    const subject = erasureSubject("actor.id", "user-42");
    const erased = [...old, ...young].map((r) => (matchesSubject(r, subject) ? erasedRecord(r, subject) : r));
    expect(erased.map((r) => Boolean(r.erased))).toEqual([true, false, true, false]);
    expect(verifies(erased)).toBe(true);
    // Version 1's kept hash is the unsalted one (a guess can be confirmed: docs/HASH_CHAIN.md); version 2's is not.
    expect(erased[0]!.contentHash).toBe(contentDigest(old[0]!));
    expect(erased[2]!.contentHash).not.toBe(contentDigest(young[0]!));
  });

  it("reads a request's field as a subject, and refuses what it cannot erase by", () => {
    expect(erasureSubject("", "v")).toEqual({ kind: "field", field: "actor.id", value: "v" });
    expect(erasureSubject("actor.user_agent", "v")).toEqual({ kind: "field", field: "actor.user_agent", value: "v" });
    expect(erasureSubject("context.location", "v")).toEqual({ kind: "field", field: "context.location", value: "v" });
    expect(erasureSubject("metadata.a.b", "v")).toEqual({ kind: "metadata", path: ["a", "b"], value: "v" });
    expect(erasureSubject("*", "v")).toEqual({ kind: "any", value: "v" });
    for (const f of ["", "target.type", "metadata.a.b", "*"]) expect(subjectField(erasureSubject(f, "v"))).toBe(f || "actor.id");
    for (const bad of ["message", "actor.type", "action", "metadata", "metadata.", "metadata.a..b", "metadata.a.", "**", "actor"]) {
      expect(() => erasureSubject(bad, "v"), bad).toThrow(ErasureFieldError);
    }
  });

  it("the request's validation accepts exactly the fields the domain erases by", () => {
    const validator = createValidator();
    const names = [
      "",
      "*",
      "actor.id",
      "actor.name",
      "actor.ip",
      "actor.user_agent",
      "actor.session_id",
      "target.type",
      "target.id",
      "target.name",
      "context.request_id",
      "context.trace_id",
      "context.source",
      "context.location",
      "metadata.email",
      "metadata.a.b.c",
      "metadata.ü-ñ",
      "message",
      "actor.type",
      "outcome",
      "metadata",
      "metadata.",
      "metadata..a",
      "metadata.a.",
      "**",
      "actor.id ",
      "changes.before",
    ];
    for (const field of names) {
      const valid =
        validator.validate(EraseSubjectRequestSchema, create(EraseSubjectRequestSchema, { field, value: "v" })).kind === "valid";
      let domain = true;
      try {
        erasureSubject(field, "v");
      } catch {
        domain = false;
      }
      expect(valid, field).toBe(domain);
    }
  });

  it("matches a subject in an envelope field, at a metadata path, or anywhere", () => {
    const r: StoredRecord = {
      ...chain(1)[0]!,
      target: { type: "doc", id: "d-1", name: "Report of Eve" },
      context: { requestId: "r-1", traceId: "t-1", source: "app", location: "Berlin" },
      metadata: { contact: { email: "eve@x.org" }, "a.b": ["x", 42, true], n: 7 },
      changes: { before: { owner: "eve" }, after: { list: [{ deep: "eve-2" }] } },
    };
    const m = (field: string, value: string) => matchesSubject(r, erasureSubject(field, value));
    expect(m("target.name", "Report of Eve")).toBe(true);
    expect(m("target.id", "Report of Eve")).toBe(false);
    expect(m("actor.user_agent", "ua")).toBe(true);
    expect(m("context.location", "Berlin")).toBe(true);
    expect(m("metadata.contact.email", "eve@x.org")).toBe(true);
    expect(m("metadata.email", "eve@x.org")).toBe(false);
    // A key holding dots, array elements and scalars by their text, as the metadata filter reads them.
    expect(m("metadata.a.b", "x")).toBe(true);
    expect(m("metadata.a.b", "42")).toBe(true);
    expect(m("metadata.a.b", "true")).toBe(true);
    expect(m("metadata.n", "7")).toBe(true);
    for (const v of ["Report of Eve", "Berlin", "eve@x.org", "42", "eve", "eve-2", "t-1"]) expect(m("*", v), v).toBe(true);
    for (const v of ["Eve", "doc-1", "contact", "owner", "login of user-1x"]) expect(m("*", v), v).toBe(false);
    // No target: target fields hold no value.
    expect(matchesSubject({ ...r, target: null }, erasureSubject("target.name", "Report of Eve"))).toBe(false);
    expect(fieldValue({ ...r, target: null }, "target.id")).toBeNull();
  });

  it("blanks a field an erased event keeps when it holds the erased value", () => {
    const r = { ...chain(1)[0]!, target: { type: "doc", id: "d-1", name: "N" } };
    const kept = (s: ErasureSubject) => {
      const e = erasedRecord(r, s);
      return [e.target?.type, e.context.requestId, e.context.traceId, e.context.source];
    };
    expect(kept(erasureSubject("actor.id", "user-1"))).toEqual(["doc", "r-1", "", "app"]);
    expect(kept(erasureSubject("context.request_id", "r-1"))).toEqual(["doc", "", "", "app"]);
    expect(kept(erasureSubject("*", "app"))).toEqual(["doc", "r-1", "", ""]);
    expect(kept(erasureSubject("*", "doc"))).toEqual(["", "r-1", "", "app"]);
    expect(kept(erasureSubject("metadata.who", "r-1"))).toEqual(["doc", "r-1", "", "app"]);
    const e = erasedRecord(r, erasureSubject("*", "app"));
    expect(verifies([{ ...e, sequence: 1n }])).toBe(true);
  });

  it("asks Elasticsearch for the same documents (term queries on keywords and flattened fields)", () => {
    expect(subjectQuery(erasureSubject("actor.user_agent", "ua"))).toEqual({ term: { "actor.user_agent": "ua" } });
    expect(subjectQuery(erasureSubject("metadata.a.b", "x"))).toEqual({ term: { "metadata.a.b": "x" } });
    const any = subjectQuery(erasureSubject("*", "x")) as { bool: { should: { term: Record<string, string> }[] } };
    const fields = any.bool.should.map((q) => Object.keys(q.term)[0]);
    expect(fields).toContain("context.request_id");
    expect(fields).toContain("metadata");
    expect(fields).toContain("changes.after");
    expect(fields).toHaveLength(15);
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
