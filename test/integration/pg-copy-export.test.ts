// The NDJSON export built by PostgreSQL and streamed with COPY
// (src/search/postgres/copy-export.ts) against the record path it replaces
// for plain NDJSON: for random events (unicode, every character JSON
// escapes, empty and missing fields, open content with null members, keys
// of digits, numbers JavaScript writes with an exponent or not as stored,
// times with microseconds, sequences beyond 2^53, erased events), the bytes
// must equal ndjsonLineOfRecord of pgExport's records, page by page, in
// both orders, with filters, limits and a User's own events (row-level
// security as the service reads).
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventQuery, SortDirection } from "../../src/domain/event-query.ts";
import type { ActorTypeName, EventRecord, OutcomeName, SeverityName } from "../../src/domain/event-record.ts";
import { ndjsonLineOfRecord } from "../../src/domain/export-format.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { OCCURRED_AT_MAX_MICROS } from "../../src/domain/timestamp.ts";
import { PostgresSearchBackend } from "../../src/search/postgres/backend.ts";
import { pgExportNdjson } from "../../src/search/postgres/copy-export.ts";
import { pgExport } from "../../src/search/postgres/export.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { migrate } from "../../src/store/migrate.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { freshDatabase } from "../support/db.ts";
import { mulberry32 } from "../support/random.ts";

const TENANT = "t-copy";
const OTHER = "t-copy-other";
const EVENTS = 600;
/** Sequences of TENANT start above 2^53, where a JavaScript number would lose digits. */
const FIRST_SEQUENCE = 2n ** 53n + 10n;

const rnd = mulberry32(20_261_130);
const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const chance = (p: number) => rnd() < p;

// Characters JSON escapes (control characters, quote, backslash), others it
// must leave alone (DEL, U+2028, non-ASCII, a surrogate pair), and JSON's
// own punctuation and spaces.
const CHARS = [
  ..."abcxyzABC019 _-./:,{}[]'",
  '"',
  "\\",
  "\n",
  "\r",
  "\t",
  "\b",
  "\f",
  "\u0001",
  "\u001f",
  "\u007f",
  "\u2028",
  "é",
  "ß",
  "中",
  "🎉",
];

function text(max = 12): string {
  let s = "";
  const n = int(0, max);
  for (let i = 0; i < n; i++) s += pick(CHARS);
  return s;
}

/** Plain text most of the time (so that both ways of quoting are taken), any text otherwise. */
function field(pEmpty = 0.2): string {
  if (chance(pEmpty)) return "";
  return chance(0.7) ? `v${int(0, 99999)}` : text();
}

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  42,
  100,
  1.5,
  -2.25,
  0.1,
  0.30000000000000004,
  123.456,
  1e15,
  1e16,
  1234567890123456,
  2 ** 53,
  2 ** 53 + 2,
  1e21,
  1.5e300,
  1e-6,
  1e-7,
  -3.5e-9,
  5e-324,
  1.7976931348623157e308,
  0.000001234,
];

const KEYS = ["a", "b", "plan", "amount", "", " ", "0", "1", "7", "10", "42", "01", "-1", "1.5", "4294967294", "4294967295", "ключ"];

function number(): number {
  return chance(0.5) ? pick(NUMBERS) : chance(0.5) ? Math.round(rnd() * 1e6) / 100 : (rnd() - 0.5) * 10 ** int(-12, 25);
}

function value(depth: number): JsonValue {
  const kinds = depth >= 3 ? 5 : 7;
  switch (int(0, kinds - 1)) {
    case 0:
      return null;
    case 1:
      return chance(0.5);
    case 2:
      return number();
    case 3:
    case 4:
      return field(0.1);
    case 5:
      return Array.from({ length: int(0, 4) }, () => value(depth + 1));
    default:
      return object(depth + 1);
  }
}

function object(depth: number): JsonObject {
  const o: JsonObject = {};
  const n = int(0, 5);
  for (let i = 0; i < n; i++) o[chance(0.5) ? pick(KEYS) : field(0)] = value(depth);
  return o;
}

/** JSON numbers, keys and nulls as JavaScript writes them, or rarely at all. */
function openContent(): JsonObject {
  if (chance(0.4)) {
    return { plan: pick(["pro", "team"]), amount: Math.round(rnd() * 1e5) / 100, labels: [field(0), field(0)], nested: { k: field() } };
  }
  return object(0);
}

/** A time in the window of occurred_at, in whole seconds, milliseconds or microseconds. */
function micros(): bigint {
  if (chance(0.02)) return pick([0n, OCCURRED_AT_MAX_MICROS]);
  const seconds = BigInt(Math.floor(rnd() * 9_223_372_035));
  return seconds * 1_000_000n + pick([0n, BigInt(int(1, 999)) * 1000n, BigInt(int(1, 999_999))]);
}

function record(i: number): EventRecord {
  return {
    id: `${chance(0.9) ? "ev" : text(6)}-${i}`,
    occurredAt: micros(),
    action: chance(0.9) ? pick(["user.login", "role.granted", "invoice.billed"]) : field(),
    actor: {
      id: pick(["u-1", "u-2", "u-3", ""]),
      type: pick<ActorTypeName>(["UNSPECIFIED", "USER", "SERVICE", "SYSTEM"]),
      name: field(),
      ip: chance(0.5) ? "203.0.113.7" : "",
      userAgent: field(),
      sessionId: field(),
    },
    target: chance(0.3) ? null : { type: field(0.1), id: field(), name: field() },
    outcome: pick<OutcomeName>(["SUCCESS", "FAILURE", "DENIED", "UNKNOWN"]),
    severity: pick<SeverityName>(["INFO", "WARNING", "ERROR", "CRITICAL"]),
    context: { requestId: field(), traceId: field(), source: field(), location: field() },
    changes: chance(0.4)
      ? null
      : pick([
          { before: openContent(), after: openContent() },
          { before: openContent(), after: null },
          { before: null, after: openContent() },
          { before: {}, after: {} },
        ]),
    metadata: chance(0.15) ? null : chance(0.05) ? {} : openContent(),
    message: chance(0.8) ? `message ${i} with words, "quotes" and a \\ backslash` : text(40),
  };
}

async function writeEvents(pool: pg.Pool, tenantId: string, n: number): Promise<void> {
  const items: WriteItem[] = Array.from({ length: n }, (_, i) => {
    const r = record(i);
    return { tenantId, record: r, ...sealContent(r) };
  });
  for (let i = 0; i < items.length; i += 100) {
    const results = await writeBatch(pool, items.slice(i, i + 100));
    expect(results.every((r) => r.status === "accepted")).toBe(true);
  }
}

async function viaRecords(pool: pg.Pool, tenantId: string, q: EventQuery, dir: SortDirection, limit: bigint | null, batchSize?: number) {
  let out = "";
  for await (const batch of pgExport(pool, tenantId, q, dir, limit, new AbortController().signal, { batchSize })) {
    for (const r of batch) out += ndjsonLineOfRecord(r);
  }
  return out;
}

/** The export's bytes, each page copied as it comes (so buffers may be reused: `reuseBuffers`, by default). */
async function viaCopy(
  pool: pg.Pool,
  tenantId: string,
  q: EventQuery,
  dir: SortDirection,
  limit: bigint | null,
  batchSize?: number,
  reuseBuffers = true,
) {
  const parts: Buffer[] = [];
  for await (const bytes of pgExportNdjson(pool, tenantId, q, dir, limit, new AbortController().signal, { batchSize, reuseBuffers })) {
    parts.push(Buffer.from(bytes));
  }
  return Buffer.concat(parts).toString("utf8");
}

/** The first line that differs, for a readable failure. */
function firstDifference(a: string, b: string): [string | undefined, string | undefined] | null {
  const la = a.split("\n");
  const lb = b.split("\n");
  for (let i = 0; i < Math.max(la.length, lb.length); i++) if (la[i] !== lb[i]) return [la[i], lb[i]];
  return null;
}

describe("NDJSON export built by PostgreSQL (COPY)", () => {
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await freshDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    await migrate(pool);
    const tenants = new TenantStore(pool);
    await tenants.create(TENANT, "copy");
    await tenants.create(OTHER, "other");
    // The test's connection is a superuser's (no row-level security): the chain head moved by hand.
    await pool.query("UPDATE chain_heads SET sequence = $2 WHERE tenant_id = $1", [TENANT, (FIRST_SEQUENCE - 1n).toString()]);
    await writeEvents(pool, TENANT, EVENTS);
    await writeEvents(pool, OTHER, 50);
    // Content only other writers than JSON.stringify leave (numbers not in
    // JavaScript's form), and erased events, as erasure leaves them.
    await pool.query(`UPDATE events SET metadata = $2::jsonb WHERE tenant_id = $1 AND sequence % 37 = 0`, [
      TENANT,
      '{"a": 1.50, "b": 12345678901234567890, "c": 1e-7, "d": 0.10000000000000001, "e": [1.0, -0.0], "10": null}',
    ]);
    await pool.query(
      `UPDATE events SET actor_id = '', actor_name = '', actor_ip = '', actor_user_agent = '', actor_session_id = '',
              target_id = CASE WHEN target_type IS NULL THEN NULL ELSE '' END, target_name = NULL,
              location = '', message = '', metadata = NULL, changes = NULL, salt = NULL, erased_at = now()
        WHERE tenant_id = $1 AND sequence % 41 = 0`,
      [TENANT],
    );
    await pool.query("ANALYZE events");
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  const all: EventQuery = { conditions: [] };

  it("writes every line as ndjsonLineOfRecord does, in both orders and pages of any size", async () => {
    for (const dir of ["asc", "desc"] as const) {
      for (const batchSize of [3, 7, 250, undefined]) {
        const expected = await viaRecords(pool, TENANT, all, dir, null, batchSize);
        const got = await viaCopy(pool, TENANT, all, dir, null, batchSize);
        expect(expected.split("\n")).toHaveLength(EVENTS + 1);
        // The cases this is about are in the data.
        for (const piece of [
          '"0":',
          '"10":',
          ":null",
          "e+21",
          "e-7",
          "5e-324",
          '"erased":true',
          "\\u0001",
          '\\"',
          "\\n",
          "🎉",
          "\u2028",
          '"salt":',
        ]) {
          expect(expected).toContain(piece);
        }
        expect(expected).toContain(`"sequence":"${FIRST_SEQUENCE}"`);
        expect(expected).toMatch(/"occurredAt":"[^"]*\.\d{6}Z"/);
        expect(expected).toMatch(/"occurredAt":"[^"]*:\d\dZ"/);
        expect(firstDifference(expected, got)).toBeNull();
        expect(got).toBe(expected);
      }
    }
  });

  it("keeps to the query: filters, free text, metadata, limits", async () => {
    const queries: EventQuery[] = [
      { conditions: [{ kind: "action", exact: ["role.granted"], prefixes: [] }] },
      { conditions: [{ kind: "terms", field: "outcome", values: ["DENIED", "FAILURE"] }] },
      { conditions: [{ kind: "text", words: ["quotes"], negate: false }] },
      { conditions: [{ kind: "metadata", path: ["plan"], values: ["pro"] }] },
      { conditions: [{ kind: "metadata", path: ["nested", "k"], values: [] }] },
      { conditions: [{ kind: "none" }] },
      // Values that a literal must escape (COPY takes them written in).
      { conditions: [{ kind: "terms", field: "actor.id", values: ["u-1", "x'); DROP TABLE events; --\\ $1"] }] },
      { conditions: [{ kind: "text", words: ["o'brien\\"], negate: true }] },
    ];
    for (const q of queries) {
      for (const [limit, batchSize] of [
        [null, 9],
        [5n, undefined],
        [23n, 4],
      ] as const) {
        const expected = await viaRecords(pool, TENANT, q, "desc", limit, batchSize);
        const got = await viaCopy(pool, TENANT, q, "desc", limit, batchSize);
        expect(firstDifference(expected, got)).toBeNull();
      }
    }
  });

  it("holds a User to their own events by row-level security, and a tenant to its own", async () => {
    // No actor condition in the query: only the policy (0006) narrows the read.
    const own: EventQuery = { conditions: [], actorId: "u-2" };
    const got = await viaCopy(pool, TENANT, own, "asc", null, 50);
    const lines = got.trimEnd().split("\n");
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) {
      const o = JSON.parse(line) as { event: { actor: { id?: string } }; tenantId: string };
      expect(o.event.actor.id).toBe("u-2");
      expect(o.tenantId).toBe(TENANT);
    }
    expect(got).toBe(await viaRecords(pool, TENANT, own, "asc", null, 50));
    const other = await viaCopy(pool, OTHER, all, "asc", null);
    expect(other.trimEnd().split("\n")).toHaveLength(50);
    expect(other).not.toContain(`"tenantId":"${TENANT}"`);
  });

  it("is what the PostgreSQL backend's exportNdjson streams", async () => {
    const backend = new PostgresSearchBackend(pool, { exportPageTimeoutMs: 30_000 });
    const parts: Buffer[] = [];
    for await (const bytes of backend.exportNdjson(TENANT, all, "asc", null, new AbortController().signal)) parts.push(Buffer.from(bytes));
    expect(Buffer.concat(parts).toString("utf8")).toBe(await viaRecords(pool, TENANT, all, "asc", null));
  });

  it("reads later pages into the buffers of pages the consumer is done with, only when asked to", async () => {
    const pagesAndBuffers = async (reuseBuffers: boolean) => {
      const buffers = new Set<ArrayBufferLike>();
      const parts: Buffer[] = [];
      for await (const bytes of pgExportNdjson(pool, TENANT, all, "asc", null, new AbortController().signal, {
        batchSize: 40,
        reuseBuffers,
      })) {
        buffers.add(bytes.buffer);
        // A consumer that takes its time with a page (a transport writing it) while the next pages are read.
        await new Promise((r) => setTimeout(r, 5));
        parts.push(Buffer.from(bytes));
      }
      return { pages: parts.length, buffers: buffers.size, text: Buffer.concat(parts).toString("utf8") };
    };
    const expected = await viaRecords(pool, TENANT, all, "asc", null, 40);
    const reused = await pagesAndBuffers(true);
    expect(reused.pages).toBe(EVENTS / 40);
    // The pages in flight and the spare ones, whatever the number of pages.
    expect(reused.buffers).toBeLessThanOrEqual(5);
    expect(firstDifference(expected, reused.text)).toBeNull();
    const fresh = await pagesAndBuffers(false);
    expect(fresh.buffers).toBe(fresh.pages);
    expect(fresh.text).toBe(expected);
    expect(await viaCopy(pool, TENANT, all, "desc", 77n, 7, false)).toBe(await viaRecords(pool, TENANT, all, "desc", 77n, 7));
  });

  it("writes nothing for no match or a limit of 0, and stops when aborted", async () => {
    expect(await viaCopy(pool, TENANT, { conditions: [{ kind: "none" }] }, "asc", null)).toBe("");
    expect(await viaCopy(pool, TENANT, all, "asc", 0n)).toBe("");
    const ac = new AbortController();
    const it = pgExportNdjson(pool, TENANT, all, "asc", null, ac.signal, { batchSize: 10 });
    expect((await it.next()).done).toBe(false);
    ac.abort(new Error("stop"));
    await expect(it.next()).rejects.toThrow("stop");
  });

  it("exports what is committed into a page's range after the range's end was found, with nothing skipped", async () => {
    const GROW = "t-copy-grow";
    await new TenantStore(pool).create(GROW, "grow");
    const at = (i: number) => BigInt(Date.UTC(2026, 0, 1)) * 1000n + BigInt(i) * 1_000_000n;
    const write = async (ids: string[], occurredAt: bigint) => {
      const items = ids.map((id, i) => {
        const r = { ...record(i), id, occurredAt, changes: null, metadata: { id } };
        return { tenantId: GROW, record: r, ...sealContent(r) };
      });
      expect((await writeBatch(pool, items)).every((r) => r.status === "accepted")).toBe(true);
    };
    for (let i = 0; i < 20; i++) await write([`e${i}`], at(i));
    // Before the first page's transaction starts (its end, the 5th event, is
    // known by then), 12 events are committed inside its range: more than a
    // page, so the range must be read on. (What is committed after a page's
    // snapshot is not in it, as with keyset pages read one after another.)
    let grown = false;
    const growing = new Proxy(pool, {
      get(target, prop, receiver) {
        if (prop !== "connect") return Reflect.get(target, prop, receiver);
        return async () => {
          const client = await target.connect();
          return new Proxy(client, {
            get(c, name, r) {
              if (name !== "query") return Reflect.get(c, name, r);
              return (q: unknown, ...rest: unknown[]) => {
                // The first page's transaction, whose snapshot is taken by its first statement.
                if (!grown && typeof q === "string" && q.startsWith("BEGIN ISOLATION LEVEL REPEATABLE READ")) {
                  grown = true;
                  return write(
                    Array.from({ length: 12 }, (_, i) => `late${i}`),
                    at(2),
                  ).then(() => c.query(q as never, ...(rest as [])));
                }
                return c.query(q as never, ...(rest as []));
              };
            },
          });
        };
      },
    });
    const parts: Buffer[] = [];
    for await (const b of pgExportNdjson(growing, GROW, all, "asc", null, new AbortController().signal, { batchSize: 5 }))
      parts.push(Buffer.from(b));
    expect(grown).toBe(true);
    const ids = Buffer.concat(parts)
      .toString("utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).event.id as string);
    expect(ids).toEqual([
      "e0",
      "e1",
      "e2",
      ...Array.from({ length: 12 }, (_, i) => `late${i}`),
      ...Array.from({ length: 17 }, (_, i) => `e${i + 3}`),
    ]);
    expect(Buffer.concat(parts).toString("utf8")).toBe(await viaRecords(pool, GROW, all, "asc", null));
  });
});
