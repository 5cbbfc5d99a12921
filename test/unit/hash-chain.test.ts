import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Outcome, Severity } from "../../gen/auditlog/v1/event_pb.js";
import type { EventRecord, StoredRecord } from "../../src/domain/event-record.ts";
import { recordFromEvent } from "../../src/domain/event-record.ts";
import {
  canonicalContent,
  canonicalContentJson,
  chainHash,
  type ChainBreak,
  ChainVerifier,
  contentDigest,
  contentHash,
  GENESIS_HASH,
  newSalt,
  sealContent,
} from "../../src/domain/hash-chain.ts";
import { canonicalJson } from "../../src/domain/json-canonical.ts";
import { chainRecords, fullEvent, minimalEvent } from "./fixtures.ts";

const HEX64 = /^[0-9a-f]{64}$/;

function chainOf(n: number, tenantId = "tenant-a"): StoredRecord[] {
  return chainRecords(
    Array.from({ length: n }, (_, i) =>
      fullEvent({ id: `evt-${i + 1}`, message: `event number ${i + 1}`, metadata: { i: i + 1, even: i % 2 === 0 } }),
    ),
    { tenantId },
  );
}

/** Runs a verifier over `records` and `finish(lastSequence)`; returns the first break. */
function verify(records: StoredRecord[], lastSequence: bigint, first = 1n, prevHash = GENESIS_HASH): ChainBreak | null {
  const v = new ChainVerifier(first, prevHash);
  for (const r of records) {
    const b = v.next(r);
    if (b) return b;
  }
  return v.finish(lastSequence);
}

describe("contentHash", () => {
  const base = recordFromEvent(fullEvent());

  it("is lowercase hex SHA-256 of the canonical content", () => {
    const h = contentHash(base);
    expect(h).toMatch(HEX64);
    expect(h).toBe(
      createHash("sha256")
        .update(canonicalJson(canonicalContent(base)))
        .digest("hex"),
    );
  });

  it("uses the contract's snake_case names and RFC 3339 time in the canonical content", () => {
    const c = canonicalContent(base) as Record<string, unknown>;
    expect(Object.keys(c).sort()).toEqual([
      "action",
      "actor",
      "changes",
      "context",
      "id",
      "message",
      "metadata",
      "occurred_at",
      "outcome",
      "severity",
      "target",
    ]);
    expect(c.occurred_at).toBe("2024-05-06T07:08:09.123456Z");
    expect(Object.keys(c.actor as object).sort()).toEqual(["id", "ip", "name", "session_id", "type", "user_agent"]);
    expect(Object.keys(c.context as object).sort()).toEqual(["location", "request_id", "source", "trace_id"]);
  });

  it("spells the canonical content exactly as canonicalJson would, for every shape of event", () => {
    const records = [
      base,
      recordFromEvent(minimalEvent()),
      recordFromEvent(minimalEvent({ target: { type: "t" }, changes: { after: { é: [1, { z: null, a: '"q"' }] } } })),
      recordFromEvent(fullEvent({ message: "line\nbreak \u2028 😀", actor: { id: "a\\b", name: "</script>" } })),
    ];
    for (const r of records) expect(canonicalContentJson(r)).toBe(canonicalJson(canonicalContent(r)));
  });

  it("is stable: the same event gives the same hash", () => {
    expect(contentHash(recordFromEvent(fullEvent()))).toBe(contentHash(recordFromEvent(fullEvent())));
  });

  it("does not depend on the key order of metadata and changes", () => {
    const a = recordFromEvent(
      fullEvent({
        metadata: { a: 1, b: { x: "1", y: [1, 2] }, c: null },
        changes: { before: { p: 1, q: 2 }, after: { r: { s: 1, t: 2 } } },
      }),
    );
    const b = recordFromEvent(
      fullEvent({
        metadata: { c: null, b: { y: [1, 2], x: "1" }, a: 1 },
        changes: { after: { r: { t: 2, s: 1 } }, before: { q: 2, p: 1 } },
      }),
    );
    expect(contentHash(a)).toBe(contentHash(b));
  });

  it("changes when array order in metadata changes", () => {
    const a = recordFromEvent(fullEvent({ metadata: { l: [1, 2] } }));
    const b = recordFromEvent(fullEvent({ metadata: { l: [2, 1] } }));
    expect(contentHash(a)).not.toBe(contentHash(b));
  });

  const mutations: [string, (r: EventRecord) => void][] = [
    [
      "id",
      (r) => {
        r.id = "other-id";
      },
    ],
    [
      "occurredAt by one microsecond",
      (r) => {
        r.occurredAt += 1n;
      },
    ],
    [
      "action",
      (r) => {
        r.action = "customer.deleted";
      },
    ],
    [
      "actor.id",
      (r) => {
        r.actor.id = "user-43";
      },
    ],
    [
      "actor.type",
      (r) => {
        r.actor.type = "SERVICE";
      },
    ],
    [
      "actor.name",
      (r) => {
        r.actor.name = "Ada L.";
      },
    ],
    [
      "actor.ip",
      (r) => {
        r.actor.ip = "2001:db8::2";
      },
    ],
    [
      "actor.userAgent",
      (r) => {
        r.actor.userAgent = "curl/8";
      },
    ],
    [
      "actor.sessionId",
      (r) => {
        r.actor.sessionId = "sess-10";
      },
    ],
    [
      "target removed",
      (r) => {
        r.target = null;
      },
    ],
    [
      "target emptied",
      (r) => {
        r.target = { type: "", id: "", name: "" };
      },
    ],
    [
      "target.type",
      (r) => {
        r.target!.type = "invoice";
      },
    ],
    [
      "target.id",
      (r) => {
        r.target!.id = "cus_124";
      },
    ],
    [
      "target.name",
      (r) => {
        r.target!.name = "ACME Inc";
      },
    ],
    [
      "outcome",
      (r) => {
        r.outcome = "SUCCESS";
      },
    ],
    [
      "severity",
      (r) => {
        r.severity = "CRITICAL";
      },
    ],
    [
      "context.requestId",
      (r) => {
        r.context.requestId = "req-2";
      },
    ],
    [
      "context.traceId",
      (r) => {
        r.context.traceId = "x";
      },
    ],
    [
      "context.source",
      (r) => {
        r.context.source = "other-api";
      },
    ],
    [
      "context.location",
      (r) => {
        r.context.location = "us-east-1";
      },
    ],
    [
      "changes removed",
      (r) => {
        r.changes = null;
      },
    ],
    [
      "changes.before value",
      (r) => {
        r.changes = { ...r.changes!, before: { street: "Other Road" } };
      },
    ],
    [
      "changes.after removed",
      (r) => {
        r.changes = { ...r.changes!, after: null };
      },
    ],
    [
      "metadata value",
      (r) => {
        r.metadata = { ...r.metadata!, plan: "free" };
      },
    ],
    [
      "metadata value type",
      (r) => {
        r.metadata = { ...r.metadata!, seats: "12" };
      },
    ],
    [
      "metadata key added",
      (r) => {
        r.metadata = { ...r.metadata!, extra: null };
      },
    ],
    [
      "metadata removed",
      (r) => {
        r.metadata = null;
      },
    ],
    [
      "message",
      (r) => {
        r.message = "Address changed by Ada — ✗";
      },
    ],
  ];

  it.each(mutations)("changes when %s changes", (_name, mutate) => {
    const r = recordFromEvent(fullEvent());
    const before = contentHash(r);
    mutate(r);
    expect(contentHash(r)).not.toBe(before);
  });

  it("treats UNSPECIFIED outcome and severity like the defaults they are stored as", () => {
    const unspecified = contentHash(recordFromEvent(fullEvent({ outcome: Outcome.UNSPECIFIED, severity: Severity.UNSPECIFIED })));
    const explicit = contentHash(recordFromEvent(fullEvent({ outcome: Outcome.UNKNOWN, severity: Severity.INFO })));
    // UNSPECIFIED is stored as UNKNOWN / INFO: the same content, the same hash.
    expect(unspecified).toBe(explicit);
  });
});

describe("salted content hash (version 2)", () => {
  const base = recordFromEvent(fullEvent());
  const salt = "0123456789abcdef0123456789abcdef";

  it("is SHA-256 of the salt, a newline and the canonical content", () => {
    const expected = createHash("sha256")
      .update(`${salt}\n${canonicalContentJson(base)}`, "utf8")
      .digest("hex");
    expect(contentHash({ ...base, salt })).toBe(expected);
    expect(sealContent(base, salt)).toEqual({ salt, contentHash: expected, digest: contentHash(base) });
  });

  it("differs from the unsalted hash and from the hash under another salt", () => {
    const other = "f".repeat(32);
    expect(contentHash({ ...base, salt })).not.toBe(contentHash(base));
    expect(contentHash({ ...base, salt })).not.toBe(contentHash({ ...base, salt: other }));
  });

  it("keeps the digest independent of the salt: equal content, equal digest (what a retry is compared by)", () => {
    const a = sealContent(base);
    const b = sealContent(base);
    expect(a.salt).not.toBe(b.salt);
    expect(a.contentHash).not.toBe(b.contentHash);
    expect(a.digest).toBe(b.digest);
    expect(a.digest).toBe(contentDigest(base));
    expect(sealContent({ ...base, message: "other" }).digest).not.toBe(a.digest);
  });

  it("makes 128-bit random salts as 32 lowercase hex digits", () => {
    const salts = new Set(Array.from({ length: 100 }, newSalt));
    expect(salts.size).toBe(100);
    for (const s of salts) expect(s).toMatch(/^[0-9a-f]{32}$/);
  });

  it("an empty salt is no salt: version 1's hash", () => {
    expect(sealContent(base, "").contentHash).toBe(contentDigest(base));
    expect(contentHash({ ...base, salt: "" })).toBe(contentDigest(base));
  });
});

describe("chainHash", () => {
  const link = { tenantId: "tenant-a", sequence: 7n, receivedAt: 1_714_979_300_000_000n, contentHash: "ab".repeat(32) };

  it("is SHA-256 of prev hash, a newline and the canonical link body", () => {
    const body =
      '{"content_hash":"' + "ab".repeat(32) + '","received_at":"2024-05-06T07:08:20.000000Z","sequence":"7","tenant_id":"tenant-a","v":1}';
    const expected = createHash("sha256").update(`${GENESIS_HASH}\n${body}`).digest("hex");
    expect(chainHash(GENESIS_HASH, link)).toBe(expected);
  });

  it("depends on the previous hash", () => {
    const a = chainHash(GENESIS_HASH, link);
    const b = chainHash("1".repeat(64), link);
    expect(a).toMatch(HEX64);
    expect(b).toMatch(HEX64);
    expect(a).not.toBe(b);
  });

  it.each([
    ["tenantId", { tenantId: "tenant-b" }],
    ["sequence", { sequence: 8n }],
    ["receivedAt", { receivedAt: 1_714_979_300_000_001n }],
    ["contentHash", { contentHash: "cd".repeat(32) }],
  ])("depends on %s", (_name, change) => {
    expect(chainHash(GENESIS_HASH, { ...link, ...change })).not.toBe(chainHash(GENESIS_HASH, link));
  });

  it("ignores extra properties on the link (only the documented fields count)", () => {
    expect(chainHash(GENESIS_HASH, { ...link, extra: "x" } as typeof link)).toBe(chainHash(GENESIS_HASH, link));
  });

  it("is deterministic", () => {
    expect(chainHash(GENESIS_HASH, link)).toBe(chainHash(GENESIS_HASH, { ...link }));
  });
});

describe("ChainVerifier", () => {
  it("accepts a good chain of 50 records", () => {
    const records = chainOf(50);
    const v = new ChainVerifier(1n, GENESIS_HASH);
    for (const r of records) expect(v.next(r)).toBeNull();
    expect(v.finish(50n)).toBeNull();
    expect(v.checked).toBe(50n);
    expect(v.lastHash).toBe(records[49]!.hash);
    expect(records[0]!.prevHash).toBe(GENESIS_HASH);
    expect(new Set(records.map((r) => r.hash)).size).toBe(50);
  });

  it("verifies salted events (version 2) and events without salt (version 1) in one chain", () => {
    const v1 = chainRecords([fullEvent({ id: "a" }), fullEvent({ id: "b" })], { unsalted: true });
    const v2 = chainRecords([fullEvent({ id: "c" }), fullEvent({ id: "d" })], { prevSequence: 2n, prevHash: v1[1]!.hash });
    expect(v1.every((r) => r.salt === undefined)).toBe(true);
    expect(v2.every((r) => /^[0-9a-f]{32}$/.test(r.salt ?? ""))).toBe(true);
    expect(verify([...v1, ...v2], 4n)).toBeNull();
  });

  it.each<[string, (r: StoredRecord) => StoredRecord]>([
    ["changed", (r) => ({ ...r, salt: "0".repeat(32) })],
    ["removed", (r) => ({ ...r, salt: undefined })],
  ])("reports content altered when a salt is %s", (_name, alter) => {
    const records = chainOf(5);
    records[2] = alter(records[2]!);
    expect(verify(records, 5n)).toMatchObject({ sequence: 3n, reason: expect.stringMatching(/^content altered/) });
  });

  it("starts the first record's link from the genesis hash", () => {
    const [r] = chainOf(1);
    expect(r!.hash).toBe(chainHash(GENESIS_HASH, { ...r!, contentHash: contentHash(r!) }));
  });

  it("verifies a range that starts in the middle, from the hash before it", () => {
    const records = chainOf(50);
    expect(verify(records.slice(20), 50n, 21n, records[19]!.hash)).toBeNull();
    // The wrong starting hash is a broken link at the first record.
    const b = verify(records.slice(20), 50n, 21n, GENESIS_HASH);
    expect(b?.sequence).toBe(21n);
    expect(b?.reason).toMatch(/^link broken/);
  });

  it.each([1, 17, 50])("reports content altered at sequence %i", (k) => {
    const records = chainOf(50);
    records[k - 1] = { ...records[k - 1]!, message: "tampered" };
    const b = verify(records, 50n);
    expect(b).not.toBeNull();
    expect(b!.sequence).toBe(BigInt(k));
    expect(b!.eventId).toBe(`evt-${k}`);
    expect(b!.reason).toMatch(/^content altered/);
    expect(b!.storedHash).toBe(records[k - 1]!.hash);
    expect(b!.expectedHash).toMatch(HEX64);
    expect(b!.expectedHash).not.toBe(b!.storedHash);
  });

  it.each<[string, (r: StoredRecord) => StoredRecord]>([
    ["metadata", (r) => ({ ...r, metadata: { ...r.metadata!, i: 999 } })],
    ["actor", (r) => ({ ...r, actor: { ...r.actor, id: "mallory" } })],
    ["occurred_at", (r) => ({ ...r, occurredAt: r.occurredAt - 1n })],
    ["severity", (r) => ({ ...r, severity: "INFO" })],
  ])("reports content altered when %s is changed", (_name, alter) => {
    const records = chainOf(10);
    records[4] = alter(records[4]!);
    const b = verify(records, 10n);
    expect(b?.sequence).toBe(5n);
    expect(b?.reason).toMatch(/^content altered/);
  });

  it("reports a hash mismatch when the stored hash is altered", () => {
    const records = chainOf(50);
    const forged = "f".repeat(64);
    records[9] = { ...records[9]!, hash: forged };
    const b = verify(records, 50n);
    expect(b?.sequence).toBe(10n);
    expect(b?.eventId).toBe("evt-10");
    expect(b?.reason).toMatch(/^hash mismatch/);
    expect(b?.storedHash).toBe(forged);
    expect(b?.expectedHash).toBe(chainOf(50)[9]!.hash);
  });

  it("reports a hash mismatch when received_at, tenant or the content hash column is rewritten consistently", () => {
    // Content re-hashed by the attacker: content hash matches, chain hash does not.
    const records = chainOf(10);
    const altered = { ...records[2]!, message: "tampered" };
    records[2] = { ...altered, contentHash: contentHash(altered) };
    expect(verify(records, 10n)?.reason).toMatch(/^hash mismatch/);

    const r2 = chainOf(10);
    r2[2] = { ...r2[2]!, receivedAt: r2[2]!.receivedAt + 1n };
    expect(verify(r2, 10n)).toMatchObject({ sequence: 3n, reason: expect.stringMatching(/^hash mismatch/) });

    const r3 = chainOf(10);
    r3[2] = { ...r3[2]!, tenantId: "tenant-b" };
    expect(verify(r3, 10n)).toMatchObject({ sequence: 3n, reason: expect.stringMatching(/^hash mismatch/) });
  });

  it("reports a broken link when prev_hash is altered", () => {
    const records = chainOf(10);
    records[6] = { ...records[6]!, prevHash: "0".repeat(64) };
    const b = verify(records, 10n);
    expect(b?.sequence).toBe(7n);
    expect(b?.reason).toMatch(/^link broken/);
  });

  it("detects a record replaced by a correctly re-chained forgery at the next record", () => {
    // Rewrite record 5 and recompute its hashes: record 6's link no longer matches.
    const records = chainOf(10);
    const forged = { ...records[4]!, message: "forged" };
    forged.contentHash = contentHash(forged);
    forged.hash = chainHash(forged.prevHash, forged);
    records[4] = forged;
    const b = verify(records, 10n);
    expect(b?.sequence).toBe(6n);
    expect(b?.reason).toMatch(/^link broken/);
  });

  it.each([1, 25, 49])("reports the missing sequence when record %i is removed", (k) => {
    const records = chainOf(50);
    records.splice(k - 1, 1);
    const b = verify(records, 50n);
    expect(b?.sequence).toBe(BigInt(k));
    expect(b?.eventId).toBe("");
    expect(b?.reason).toBe(`event at sequence ${k} is missing (next stored is ${k + 1})`);
  });

  it("reports swapped records as missing or out of order at the first swapped position", () => {
    const records = chainOf(50);
    [records[10], records[11]] = [records[11]!, records[10]!];
    const b = verify(records, 50n);
    expect(b?.sequence).toBe(11n);
    expect(b?.reason).toMatch(/missing|out of order/);
  });

  it("reports a repeated or earlier sequence as out of order", () => {
    const records = chainOf(10);
    const withRepeat = [...records.slice(0, 5), records[2]!, ...records.slice(5)];
    const b = verify(withRepeat, 10n);
    expect(b?.sequence).toBe(6n);
    expect(b?.eventId).toBe("evt-3");
    expect(b?.reason).toBe("sequence 3 is out of order");
  });

  it("reports a record renumbered to fill a gap as a broken chain", () => {
    // Remove record 5 and renumber the rest: sequences look fine, the chain does not.
    const records = chainOf(10);
    const renumbered = [...records.slice(0, 4), ...records.slice(5).map((r) => ({ ...r, sequence: r.sequence - 1n }))];
    const b = verify(renumbered, 9n);
    expect(b?.sequence).toBe(5n);
    expect(b?.reason).toMatch(/^link broken/);
  });

  it("finish() reports a missing tail", () => {
    const records = chainOf(50);
    const v = new ChainVerifier(1n, GENESIS_HASH);
    for (const r of records.slice(0, 47)) expect(v.next(r)).toBeNull();
    const b = v.finish(50n);
    expect(b).toEqual({ sequence: 48n, eventId: "", reason: "event at sequence 48 is missing", expectedHash: "", storedHash: "" });
    expect(v.checked).toBe(47n);
    expect(v.lastHash).toBe(records[46]!.hash);
  });

  it("finish() reports the last record missing when only it was removed", () => {
    const records = chainOf(50);
    const b = verify(records.slice(0, 49), 50n);
    expect(b).toMatchObject({ sequence: 50n, eventId: "", reason: "event at sequence 50 is missing" });
    expect(verify(records, 50n)).toBeNull();
  });

  it("finish() on an empty range that should hold events reports the first one missing", () => {
    expect(new ChainVerifier(1n, GENESIS_HASH).finish(3n)?.sequence).toBe(1n);
    expect(new ChainVerifier(1n, GENESIS_HASH).finish(0n)).toBeNull();
  });

  it("does not advance past a break", () => {
    const records = chainOf(5);
    const v = new ChainVerifier(1n, GENESIS_HASH);
    expect(v.next(records[0]!)).toBeNull();
    expect(v.next({ ...records[1]!, message: "x" })).not.toBeNull();
    expect(v.checked).toBe(1n);
    expect(v.lastHash).toBe(records[0]!.hash);
  });

  it("keeps the chains of two tenants independent", () => {
    const a = chainOf(5, "tenant-a");
    const b = chainOf(5, "tenant-b");
    expect(a[0]!.hash).not.toBe(b[0]!.hash);
    expect(verify(a, 5n)).toBeNull();
    expect(verify(b, 5n)).toBeNull();
    // A record copied from another tenant's chain does not fit.
    const mixed = [...a.slice(0, 2), { ...b[2]!, tenantId: "tenant-a" }, ...a.slice(3)];
    expect(verify(mixed, 5n)?.sequence).toBe(3n);
  });

  it("accepts records whose defaults were applied (minimal events)", () => {
    const records = chainRecords(Array.from({ length: 3 }, () => minimalEvent()));
    expect(verify(records, 3n)).toBeNull();
  });
});
