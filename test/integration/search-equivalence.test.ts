// Search equivalence: Elasticsearch, PostgreSQL and the reference evaluator
// (matchesQuery + compareForSort over every record of the tenant) must give
// exactly the same events in the same order, page by page, for randomly
// generated queries over a varied data set of two tenants.
//
// Environment:
//   AUDITLOG_EQUIVALENCE_EVENTS   events to generate (default 20000)
//   AUDITLOG_EQUIVALENCE_QUERIES  random queries (default 400, at least 300)
//   AUDITLOG_EQUIVALENCE_SEED     seed of the data and query generators (default fixed)
//   AUDITLOG_EQUIVALENCE_PG_SHARE share of the queries also run against the
//                                 PostgreSQL backend (default 1: all). At a million
//                                 events its unindexed filters take seconds per
//                                 page; Elasticsearch is always compared.
//
// The data avoids the documented cases where backends legitimately differ
// (docs/QUERY_SYNTAX.md, "Backend differences"): text is ASCII; no phrase is
// generated that could span two string values (or message and a value),
// metadata has no objects inside arrays. It does have keys with dots in them,
// alone and next to the nested objects that spell the same path.
import { randomBytes } from "node:crypto";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Client } from "@elastic/elasticsearch";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Condition, EventQuery, SortDirection, TermField } from "../../src/domain/event-query.ts";
import { severitiesAtLeast, TERM_FIELDS, words } from "../../src/domain/event-query.ts";
import type { ActorTypeName, EventRecord, OutcomeName, StoredRecord } from "../../src/domain/event-record.ts";
import { SEVERITY_ORDER } from "../../src/domain/event-record.ts";
import { sealContent } from "../../src/domain/hash-chain.ts";
import { compareForSort, matchesQuery, termValue } from "../../src/domain/match-query.ts";
import type { PagePosition } from "../../src/domain/page-token.ts";
import { parseQueryString } from "../../src/domain/query-string.ts";
import { formatMicros, type Micros, parseMicros } from "../../src/domain/timestamp.ts";
import type { SearchBackend, SearchPage } from "../../src/search/backend.ts";
import { ElasticsearchSearchBackend } from "../../src/search/elasticsearch/backend.ts";
import { documentFromRecord, documentId } from "../../src/search/elasticsearch/event-document.ts";
import { indexNames, type IndexNames } from "../../src/search/elasticsearch/index-names.ts";
import { ensureIndexTemplate } from "../../src/search/elasticsearch/index-setup.ts";
import { indexTemplate } from "../../src/search/elasticsearch/index-template.ts";
import { EVENT_COLUMNS, type EventRow, recordFromRow } from "../../src/store/event-rows.ts";
import { type WriteItem, writeBatch } from "../../src/store/event-writer.ts";
import { migrate } from "../../src/store/migrate.ts";
import { PostgresSearchBackend } from "../../src/search/postgres/backend.ts";
import { TenantStore } from "../../src/store/tenant-store.ts";
import { freshDatabase } from "../support/db.ts";
import { mulberry32 } from "../support/random.ts";

const N = Number(process.env.AUDITLOG_EQUIVALENCE_EVENTS || 20_000);
const QUERIES = Math.max(300, Number(process.env.AUDITLOG_EQUIVALENCE_QUERIES || 400));
const SEED = Number(process.env.AUDITLOG_EQUIVALENCE_SEED || 20_261_123);
const PG_SHARE = Math.min(1, Math.max(0, Number(process.env.AUDITLOG_EQUIVALENCE_PG_SHARE ?? 1)));
const MAX_PAGES = 6;
const TENANT_A = "tenant-eq-a";
const TENANT_B = "tenant-eq-b";

// ---------------------------------------------------------------------------
// seeded randomness

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  some<T>(xs: readonly T[], min: number, max: number): T[] {
    const n = this.int(min, Math.min(max, xs.length));
    const pool = [...xs];
    const out: T[] = [];
    while (out.length < n) out.push(pool.splice(Math.floor(this.next() * pool.length), 1)[0]!);
    return out;
  }
  weighted<T>(pairs: readonly (readonly [T, number])[]): T {
    const total = pairs.reduce((s, [, w]) => s + w, 0);
    let x = this.next() * total;
    for (const [v, w] of pairs) if ((x -= w) < 0) return v;
    return pairs.at(-1)![0];
  }
}

// ---------------------------------------------------------------------------
// the data
//
// Three disjoint vocabularies keep phrases from spanning values:
//   MESSAGE words appear only in `message`;
//   NOTE words only in metadata.note (the one multi-word string value);
//   VALUE words only in other open-content strings, which phrase queries never use.

const MESSAGE_WORDS = [
  "card",
  "declined",
  "by",
  "the",
  "bank",
  "password",
  "changed",
  "after",
  "reset",
  "request",
  "invoice",
  "sent",
  "to",
  "customer",
  "paid",
  "late",
  "address",
  "updated",
  "from",
  "admin",
  "console",
  "login",
  "failed",
  "twice",
  "account",
  "locked",
  "temporarily",
  "export",
  "started",
  "finished",
  "permission",
  "denied",
  "for",
  "role",
  "billing",
  "owner",
  "key",
  "rotated",
  "session",
  "expired",
];
const MESSAGE_TEMPLATES = [
  "Card declined by the bank",
  "card declined after password reset",
  "Password changed after reset request",
  "invoice sent to customer",
  "invoice paid late",
  "Address updated from admin console",
  "login failed twice - account locked temporarily",
  "Export started, export finished",
  "permission denied for role billing owner",
  "key rotated after session expired",
  "Account locked after login failed",
];
const NOTE_WORDS = [
  "client",
  "asked",
  "about",
  "into",
  "refund",
  "via",
  "phone",
  "escalated",
  "tier",
  "two",
  "support",
  "duplicate",
  "charge",
  "reported",
];
const NOTE_TEMPLATES = [
  "asked about refund via phone",
  "Escalated into tier two support",
  "duplicate charge reported via support",
  "refund escalated",
];
// Phrases are only taken from within one message or one note.

const VALUE_WORDS = {
  plan: ["free", "pro", "enterprise"],
  region: ["emea", "apac", "amer"],
  brand: ["visa", "mastercard", "amex"],
  status: ["active", "suspended", "closed", "pending"],
  tags: ["vip", "trial", "churn-risk", "beta-tester", "partner"],
};

const ACTIONS = [
  "customer.created",
  "customer.updated",
  "customer.deleted",
  "customer.address.changed",
  "customer.address.verified",
  "invoice.billed",
  "invoice.paid",
  "invoice.voided",
  "account.deactivated",
  "account.reactivated",
  "user.login",
  "user.logout",
  "user.password.reset",
  "api_key.created",
  "api_key.revoked",
  "report-export.started",
];
const NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth", ""];
const SOURCES = ["billing-api", "auth-service", "admin-ui", "scheduler"];
const LOCATIONS = ["eu-west-1", "us-east-1", "ap-south-1", ""];
const TARGET_TYPES = ["customer", "invoice", "account", "user", "api_key"];
const ACTOR_TYPES: ActorTypeName[] = ["USER", "SERVICE", "SYSTEM", "UNSPECIFIED"];
const OUTCOMES: OutcomeName[] = ["SUCCESS", "FAILURE", "DENIED", "UNKNOWN"];

const START = parseMicros("2025-07-01T00:00:00Z");
const END = parseMicros("2026-03-01T00:00:00Z");

function generateRecords(rng: Rng, n: number): { tenantId: string; record: EventRecord }[] {
  const out: { tenantId: string; record: EventRecord }[] = [];
  const idsOfA: string[] = [];
  const idsOfB = new Set<string>();
  for (let i = 0; i < n; i++) {
    const tenantId = rng.chance(0.7) ? TENANT_A : TENANT_B;
    let id = rng.chance(0.5) ? `evt-${i}` : `01J${randomHexFrom(rng, 23).toUpperCase()}`;
    // Event ids are unique per tenant only: tenant B reuses some of A's.
    if (tenantId === TENANT_B && idsOfA.length && rng.chance(0.3)) {
      const shared = rng.pick(idsOfA);
      if (!idsOfB.has(shared)) id = shared;
    }
    if (tenantId === TENANT_A) idsOfA.push(id);
    else idsOfB.add(id);
    // Some events share an occurred_at exactly (the sequence decides), many share a millisecond.
    const occurredAt: Micros =
      out.length && rng.chance(0.1)
        ? rng.pick(out).record.occurredAt
        : out.length && rng.chance(0.1)
          ? (rng.pick(out).record.occurredAt / 1000n) * 1000n + BigInt(rng.int(0, 999))
          : START + BigInt(Math.floor(rng.next() * Number(END - START)));
    const actorType = rng.weighted(ACTOR_TYPES.map((t, k) => [t, [6, 3, 1, 0.5][k]!] as const));
    const actorNo = rng.int(0, 59);
    const target = rng.chance(0.15)
      ? null
      : (() => {
          const type = rng.pick(TARGET_TYPES);
          return { type, id: `${type}-${rng.int(0, 199)}`, name: rng.chance(0.2) ? "" : `${type} ${rng.int(0, 30)}` };
        })();
    out.push({
      tenantId,
      record: {
        id,
        occurredAt,
        action: rng.pick(ACTIONS),
        actor: {
          id: actorType === "SERVICE" ? `svc-${actorNo % 5}` : `u-${actorNo}`,
          type: actorType,
          name: rng.pick(NAMES),
          ip: rng.chance(0.2)
            ? ""
            : rng.chance(0.2)
              ? `2001:db8::${rng.int(1, 20).toString(16)}`
              : `10.0.${rng.int(0, 3)}.${rng.int(1, 40)}`,
          userAgent: rng.pick(["curl/8.5", "Mozilla/5.0", ""]),
          sessionId: rng.chance(0.3) ? "" : `s-${rng.int(0, 99)}`,
        },
        target,
        outcome: rng.weighted(OUTCOMES.map((o, k) => [o, [10, 3, 2, 1][k]!] as const)),
        severity: rng.weighted(SEVERITY_ORDER.map((s, k) => [s, [10, 4, 2, 1][k]!] as const)),
        context: {
          requestId: `req-${i}`,
          traceId: rng.chance(0.5) ? "" : randomHexFrom(rng, 32),
          source: rng.pick(SOURCES),
          location: rng.pick(LOCATIONS),
        },
        changes: rng.chance(0.4) ? makeChanges(rng) : null,
        metadata: rng.chance(0.05) ? null : makeMetadata(rng),
        message: rng.chance(0.05) ? "" : makeMessage(rng),
      },
    });
  }
  return out;
}

function randomHexFrom(rng: Rng, len: number): string {
  let s = "";
  while (s.length < len) s += rng.int(0, 15).toString(16);
  return s;
}

function makeMessage(rng: Rng): string {
  if (rng.chance(0.6)) return rng.pick(MESSAGE_TEMPLATES);
  const n = rng.int(1, 8);
  const parts: string[] = [];
  for (let k = 0; k < n; k++) {
    const w = rng.pick(MESSAGE_WORDS);
    parts.push(rng.chance(0.1) ? w.toUpperCase() : w);
  }
  return parts.join(rng.pick([" ", " ", ", ", " - "]));
}

function makeMetadata(rng: Rng): JsonObject {
  const m: JsonObject = {};
  if (rng.chance(0.9)) m.plan = rng.pick(VALUE_WORDS.plan);
  if (rng.chance(0.7)) m.seats = rng.int(0, 200);
  if (rng.chance(0.3)) m.ratio = rng.pick([0.25, 0.5, 1.5, 2.75, 3, 10]);
  if (rng.chance(0.5)) m.beta = rng.chance(0.5);
  if (rng.chance(0.5)) m.region = rng.chance(0.9) ? rng.pick(VALUE_WORDS.region) : rng.int(1, 3); // mixed types under one key
  if (rng.chance(0.4)) {
    m.card = {
      brand: rng.pick(VALUE_WORDS.brand),
      last4: String(rng.int(1000, 1020)),
      exp: { month: rng.int(1, 12), year: rng.pick([2026, 2027, 2028]) },
    };
  }
  if (rng.chance(0.35)) m.tags = rng.some(VALUE_WORDS.tags, 0, 3);
  if (rng.chance(0.2)) m.codes = rng.some([1, 2, 3, 5, 8], 1, 3);
  if (rng.chance(0.1)) m.mixed = [rng.pick(VALUE_WORDS.status), rng.int(1, 5), rng.chance(0.5), null];
  if (rng.chance(0.15)) m.note = rng.chance(0.7) ? rng.pick(NOTE_TEMPLATES) : rng.some(NOTE_WORDS, 1, 4).join(" ");
  if (rng.chance(0.1)) m.maybe = rng.chance(0.5) ? null : rng.pick(VALUE_WORDS.status);
  if (rng.chance(0.1)) m.empty = "";
  if (rng.chance(0.1)) m.limits = rng.chance(0.7) ? { daily: rng.int(1, 9) } : {};
  if (rng.chance(0.05)) m.nulls = [null];
  // Keys with dots: the same path spelled as nested objects, one dotted key, or a mix.
  if (rng.chance(0.15)) m["card.brand"] = rng.pick(VALUE_WORDS.brand);
  if (rng.chance(0.3)) {
    const v = rng.chance(0.8) ? rng.pick(VALUE_WORDS.status) : rng.int(1, 3);
    const spelling = rng.int(0, 3);
    if (spelling === 0) m["geo.site.zone"] = v;
    else if (spelling === 1) m["geo.site"] = { zone: v };
    else if (spelling === 2) m.geo = { "site.zone": v };
    else m.geo = { site: { zone: v } };
  }
  if (rng.chance(0.1)) m["geo.site"] = rng.chance(0.5) ? { zone: [rng.pick(VALUE_WORDS.status), null] } : rng.pick(VALUE_WORDS.status);
  return m;
}

function makeChanges(rng: Rng): { before: JsonObject | null; after: JsonObject | null } {
  const state = (): JsonObject => ({
    status: rng.pick(VALUE_WORDS.status),
    ...(rng.chance(0.5) ? { seats: rng.int(1, 50) } : {}),
    ...(rng.chance(0.3) ? { labels: rng.some(VALUE_WORDS.tags, 0, 2) } : {}),
  });
  const kind = rng.int(0, 2);
  return { before: kind === 0 ? null : state(), after: kind === 1 ? null : state() };
}

// ---------------------------------------------------------------------------
// queries

type GeneratedQuery = { q: EventQuery; text: string | null; shape: string };

/** Metadata paths that queries use, including ones no event has. */
const METADATA_PATHS = [
  ["plan"],
  ["seats"],
  ["ratio"],
  ["beta"],
  ["region"],
  ["card", "brand"],
  ["card", "last4"],
  ["card", "exp", "month"],
  ["card"],
  ["tags"],
  ["codes"],
  ["mixed"],
  ["note"],
  ["maybe"],
  ["empty"],
  ["limits"],
  ["limits", "daily"],
  ["nulls"],
  ["missing"],
  ["card", "missing"],
  ["geo", "site", "zone"],
  ["geo", "site"],
  ["geo"],
];

/** Values at the path under nested keys only, and under the one key with all the dots: enough to sample values from. */
function jsonAt(v: JsonValue | null | undefined, path: string[]): JsonValue[] {
  let cur: JsonValue | undefined = v ?? undefined;
  for (const k of path) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, k)) {
      cur = undefined;
      break;
    }
    cur = cur[k];
  }
  const literal = v && typeof v === "object" && !Array.isArray(v) && path.length > 1 ? v[path.join(".")] : undefined;
  return [cur, literal].filter((x): x is JsonValue => x !== undefined);
}

function metadataTexts(r: StoredRecord, path: string[]): string[] {
  const list = jsonAt(r.metadata, path).flatMap((v) => (Array.isArray(v) ? v : [v]));
  return list.filter((x) => typeof x === "string" || typeof x === "number" || typeof x === "boolean").map(String);
}

class QueryGenerator {
  private readonly rng: Rng;
  private readonly records: Map<string, StoredRecord[]>;

  constructor(rng: Rng, records: Map<string, StoredRecord[]>) {
    this.rng = rng;
    this.records = records;
  }

  private sample(tenantId: string): StoredRecord {
    // Mostly this tenant's values; sometimes the other tenant's (which must find nothing of theirs).
    const t = this.rng.chance(0.9) ? tenantId : tenantId === TENANT_A ? TENANT_B : TENANT_A;
    return this.rng.pick(this.records.get(t)!);
  }

  generate(tenantId: string, asText: boolean): GeneratedQuery {
    const rng = this.rng;
    const n = rng.weighted([
      [0, 1],
      [1, 5],
      [2, 4],
      [3, 2],
      [4, 1],
    ] as const);
    const conditions: Condition[] = [];
    const used = new Set<string>();
    for (let k = 0; k < n; k++) {
      const c = this.condition(tenantId, asText);
      if (!c) continue;
      // A query string ORs repeated fields, so text queries use each field once.
      const key = c.kind === "terms" ? `terms:${c.field}` : c.kind === "metadata" ? `m:${c.path.join(".")}` : c.kind;
      if (asText && key !== "text" && used.has(key)) continue;
      used.add(key);
      conditions.push(c);
    }
    const q = { conditions };
    return { q, text: asText ? toQueryString(rng, conditions) : null, shape: shapeOf(q) };
  }

  private condition(tenantId: string, asText: boolean): Condition | null {
    const rng = this.rng;
    const kind = rng.weighted([
      ["terms", 5],
      ["severity", 1.5],
      ["action", 3],
      ["time", 3],
      ["metadata", 4],
      ["text", 5],
      ["none", asText ? 0 : 0.15],
    ] as const);
    switch (kind) {
      case "terms": {
        const field: TermField = rng.pick(TERM_FIELDS.filter((f) => f !== "action"));
        const values = new Set<string>();
        for (let k = rng.int(1, 3); k > 0; k--) {
          const v = termValue(this.sample(tenantId), field);
          if (v !== null) values.add(v);
        }
        if (rng.chance(0.15)) values.add(field === "severity" ? rng.pick(SEVERITY_ORDER) : `no-such-${rng.int(0, 9)}`);
        if (["severity", "outcome", "actor.type"].includes(field)) {
          const valid: readonly string[] = field === "severity" ? SEVERITY_ORDER : field === "outcome" ? OUTCOMES : ACTOR_TYPES;
          for (const v of values) if (!valid.includes(v)) values.delete(v);
        }
        return values.size ? { kind: "terms", field, values: [...values] } : null;
      }
      case "severity":
        return { kind: "terms", field: "severity", values: severitiesAtLeast(rng.pick(SEVERITY_ORDER)) };
      case "action": {
        const exact = rng.chance(0.6) ? [...new Set(Array.from({ length: rng.int(1, 3) }, () => this.sample(tenantId).action))] : [];
        const prefixes = new Set<string>();
        if (!exact.length || rng.chance(0.4)) {
          for (let k = rng.int(1, 2); k > 0; k--) {
            const segs = this.sample(tenantId).action.split(".");
            prefixes.add(`${segs.slice(0, rng.int(1, segs.length - 1)).join(".")}.`);
          }
        }
        return { kind: "action", exact, prefixes: [...prefixes] };
      }
      case "time": {
        const t = () => {
          const base = this.sample(tenantId).occurredAt;
          return rng.chance(0.3)
            ? base + BigInt(rng.int(-1, 1))
            : rng.chance(0.5)
              ? base
              : START + BigInt(Math.floor(rng.next() * Number(END - START)));
        };
        const [a, b] = [t(), t()];
        const [lo, hi] = a < b ? [a, b] : [b, a];
        const which = rng.int(0, 3);
        return {
          kind: "time",
          from: which === 1 ? null : which === 3 && rng.chance(0.5) ? hi : lo,
          to: which === 2 ? null : which === 3 && rng.chance(0.5) ? lo : hi, // which 3: sometimes empty or inverted
        };
      }
      case "metadata": {
        const path = rng.pick(METADATA_PATHS);
        if (rng.chance(0.3)) return { kind: "metadata", path, values: [] };
        const values = new Set<string>();
        for (let tries = 0; tries < 20 && values.size < rng.int(1, 3); tries++) {
          const texts = metadataTexts(this.sample(tenantId), path);
          if (texts.length) values.add(rng.pick(texts));
        }
        if (!values.size || rng.chance(0.15)) values.add(rng.pick(["nope", "0", "true", "", "1.50"]));
        return { kind: "metadata", path, values: [...values] };
      }
      case "text": {
        const negate = rng.chance(0.25);
        const r = this.sample(tenantId);
        let w: string[];
        const note = typeof r.metadata?.note === "string" ? r.metadata.note : null;
        const from = rng.chance(0.2) && note ? words(note) : words(r.message);
        if (from.length && rng.chance(0.5)) {
          const len = rng.int(2, 3);
          const at = rng.int(0, Math.max(0, from.length - len));
          w = from.slice(at, at + len);
        } else {
          w = [
            rng.pick([
              ...MESSAGE_WORDS,
              ...NOTE_WORDS,
              ...Object.values(VALUE_WORDS)
                .flat()
                .flatMap((v) => words(v)),
              "nothingatall",
            ]),
          ];
        }
        if (!w.length) return null;
        return { kind: "text", words: w, negate };
      }
      case "none":
        return { kind: "none" };
    }
  }
}

function shapeOf(q: EventQuery): string {
  if (q.conditions.length === 0) return "match_all";
  if (q.conditions.length > 1) return "combined (2-4 conditions)";
  const c = q.conditions[0]!;
  switch (c.kind) {
    case "terms":
      return c.field === "severity" ? "terms severity" : "terms";
    case "action":
      return c.prefixes.length ? "action prefix" : "action exact";
    case "time":
      return "time range";
    case "metadata":
      return c.values.length ? "metadata value" : "metadata exists";
    case "text":
      return c.negate ? "text negated" : c.words.length > 1 ? "text phrase" : "text word";
    case "none":
      return "none";
  }
}

function quote(v: string): string {
  return `"${v.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;
}

const ALIAS_OF: Partial<Record<TermField, string>> = {
  "context.source": "source",
  "context.location": "location",
  "context.request_id": "request_id",
  "context.trace_id": "trace_id",
};
const ENUM_PREFIX: Partial<Record<TermField, string>> = { severity: "SEVERITY_", outcome: "OUTCOME_", "actor.type": "ACTOR_TYPE_" };

/** The human syntax for conditions (each field used once), in varied spellings. */
function toQueryString(rng: Rng, conditions: Condition[]): string {
  const parts: string[] = [];
  for (const c of conditions) {
    switch (c.kind) {
      case "terms": {
        const name = ALIAS_OF[c.field] && rng.chance(0.5) ? ALIAS_OF[c.field]! : c.field;
        const isEnum = ENUM_PREFIX[c.field] !== undefined;
        const spell = (v: string) => {
          if (!isEnum) return quote(v);
          const s = rng.chance(0.3) ? `${ENUM_PREFIX[c.field]}${v}` : v;
          return rng.chance(0.5) ? s.toLowerCase() : s;
        };
        if (
          c.field === "severity" &&
          c.values.length > 1 &&
          c.values.at(-1) === "CRITICAL" &&
          c.values.every((v, k) => v === SEVERITY_ORDER[SEVERITY_ORDER.length - c.values.length + k])
        ) {
          parts.push(`severity>=${spell(c.values[0]!)}`);
        } else {
          for (const v of c.values) parts.push(`${name}:${spell(v)}`);
        }
        break;
      }
      case "action":
        for (const v of c.exact) parts.push(`action:${v}`);
        for (const p of c.prefixes) parts.push(`action:${p}*`);
        break;
      case "time":
        if (c.from !== null) parts.push(`occurred_at>=${formatMicros(c.from)}`);
        if (c.to !== null) parts.push(`occurred_at<${formatMicros(c.to)}`);
        break;
      case "metadata":
        if (c.values.length === 0) parts.push(`metadata.${c.path.join(".")}:*`);
        for (const v of c.values) parts.push(`metadata.${c.path.join(".")}:${quote(v)}`);
        break;
      case "text": {
        const neg = c.negate ? "-" : "";
        parts.push(c.words.length === 1 && rng.chance(0.5) ? `${neg}${c.words[0]}` : `${neg}${quote(c.words.join(" "))}`);
        break;
      }
      case "none":
        throw new Error("not expressible");
    }
  }
  return parts.join(rng.pick([" ", "  ", "\t"]));
}

// ---------------------------------------------------------------------------
// measurements

const latencies = new Map<string, { es: number[]; pg: number[] }>();
function record(shape: string, backend: "es" | "pg", ms: number) {
  let l = latencies.get(shape);
  if (!l) latencies.set(shape, (l = { es: [], pg: [] }));
  l[backend].push(ms);
}
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

// ---------------------------------------------------------------------------
// setup

let client: Client;
let pool: pg.Pool;
let dropDb: () => Promise<void>;
let names: IndexNames;
let es: ElasticsearchSearchBackend;
let pgBackend: PostgresSearchBackend;
const all = new Map<string, StoredRecord[]>();
const heads = new Map<string, bigint>();

/** The service's own template under the test's prefix. */
async function putTemplate(): Promise<void> {
  await ensureIndexTemplate(client, indexTemplate, { prefix: names.prefix });
}

async function dropIndices(): Promise<void> {
  const found = await client.indices.get({ index: names.pattern, ignore_unavailable: true, allow_no_indices: true }).catch(() => ({}));
  const list = Object.keys(found);
  if (list.length) await client.indices.delete({ index: list.join(",") }).catch(() => {});
  await client.indices.deleteIndexTemplate({ name: names.templateName }).catch(() => {});
}

beforeAll(
  async () => {
    const t0 = performance.now();
    const db = await freshDatabase();
    dropDb = db.drop;
    pool = new pg.Pool({ connectionString: db.url, max: 8 });
    pool.on("error", () => {});
    await migrate(pool);
    const tenants = new TenantStore(pool);
    await tenants.create(TENANT_A, "A");
    await tenants.create(TENANT_B, "B");

    client = new Client({ node: inject("elasticsearchUrl") });
    names = indexNames(`eqtest-${randomBytes(4).toString("hex")}`);
    await putTemplate();

    // PostgreSQL, through the writer (sequences, hash chain).
    const generated = generateRecords(new Rng(SEED), N);
    for (let i = 0; i < generated.length; i += 1000) {
      const items: WriteItem[] = generated.slice(i, i + 1000).map((g) => ({ ...g, ...sealContent(g.record) }));
      const results = await writeBatch(pool, items);
      expect(results.every((r) => r.status === "accepted")).toBe(true);
    }
    for (const t of [TENANT_A, TENANT_B]) {
      const rows = await pool.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1`, [t]);
      all.set(t, rows.rows.map(recordFromRow));
      heads.set(t, BigInt((await pool.query("SELECT sequence FROM chain_heads WHERE tenant_id = $1", [t])).rows[0].sequence));
    }
    const tPg = performance.now();

    // Elasticsearch, straight from the stored records.
    const records = [...all.values()].flat();
    for (let i = 0; i < records.length; i += 2000) {
      const operations = records.slice(i, i + 2000).flatMap((r) => {
        const doc = documentFromRecord(r);
        return [{ index: { _index: names.indexFor(doc.occurred_at), _id: documentId(r.tenantId, r.id), routing: r.tenantId } }, doc];
      });
      const res = await client.bulk({ operations });
      if (res.errors) throw new Error(`bulk failed: ${JSON.stringify(res.items.find((x) => x.index?.error))}`);
    }
    await client.indices.refresh({ index: names.alias });
    const count = await client.count({ index: names.alias });
    expect(count.count).toBe(records.length);
    for (const [t, head] of heads) {
      await pool.query("INSERT INTO index_progress (tenant_id, indexed_sequence) VALUES ($1, $2)", [t, head.toString()]);
    }
    es = new ElasticsearchSearchBackend(client, pool, { readAlias: names.alias });
    pgBackend = new PostgresSearchBackend(pool);
    process.stderr.write(
      `[search-equivalence] ${N} events (A ${all.get(TENANT_A)!.length}, B ${all.get(TENANT_B)!.length}), seed ${SEED}: ` +
        `PostgreSQL ${Math.round(tPg - t0)} ms, Elasticsearch ${Math.round(performance.now() - tPg)} ms` +
        "\n",
    );
  },
  Math.max(600_000, N * 1.5),
);

afterAll(async () => {
  if (client && names) await dropIndices();
  await client?.close();
  await pool?.end();
  await dropDb?.();
});

// ---------------------------------------------------------------------------
// tests

const ids = (rs: StoredRecord[]) => rs.map((r) => r.id);

describe("search equivalence: Elasticsearch = PostgreSQL = reference", () => {
  it("the vocabularies keep phrases inside one value", () => {
    const message = new Set(MESSAGE_WORDS.flatMap(words));
    const note = new Set(NOTE_WORDS.flatMap(words));
    const value = new Set(Object.values(VALUE_WORDS).flat().flatMap(words));
    for (const w of message) expect(note.has(w) || value.has(w), w).toBe(false);
    for (const w of note) expect(value.has(w), w).toBe(false);
    for (const t of MESSAGE_TEMPLATES) for (const w of words(t)) expect(message.has(w), w).toBe(true);
    for (const t of NOTE_TEMPLATES) for (const w of words(t)) expect(note.has(w), w).toBe(true);
  });

  it("the index analyzes the generated text exactly like words()", async () => {
    const texts = new Set<string>();
    for (const r of [...all.values()].flat().slice(0, 3000)) {
      texts.add(r.message);
      for (const v of documentFromRecord(r).open_text) texts.add(v);
    }
    const index = Object.keys(await client.indices.get({ index: names.pattern }))[0]!;
    for (const text of [...texts].slice(0, 400)) {
      const res = await client.indices.analyze({ index, field: "message", text });
      expect(
        (res.tokens ?? []).map((t) => t.token),
        text,
      ).toEqual(words(text));
    }
  });

  it(`gives the same pages for ${QUERIES} random queries`, async () => {
    const rng = new Rng(SEED ^ 0x5eed);
    const gen = new QueryGenerator(rng, all);
    const pgPick = new Rng(SEED ^ 0x9a);
    let pages = 0;
    let queriesAsText = 0;
    let nonEmpty = 0;
    let totalsCompared = 0;
    let pgQueries = 0;
    const started = performance.now();

    let comparePg = true;
    const run = async (
      backend: SearchBackend,
      label: "es" | "pg",
      shape: string,
      tenantId: string,
      q: EventQuery,
      dir: SortDirection,
      after: PagePosition | null,
      limit: number,
      withTotal: boolean,
    ): Promise<SearchPage> => {
      const t = performance.now();
      const page = await backend.search(tenantId, q, dir, after, limit, withTotal);
      record(shape, label, performance.now() - t);
      for (const r of page.records) expect(r.tenantId, "a result of the other tenant").toBe(tenantId);
      return page;
    };

    for (let n = 0; n < QUERIES; n++) {
      const tenantId = rng.chance(0.65) ? TENANT_A : TENANT_B;
      const asText = rng.chance(0.35);
      const g = gen.generate(tenantId, asText);
      let q = g.q;
      if (g.text !== null) {
        queriesAsText++;
        q = { conditions: parseQueryString(g.text) };
        expect(q, `parse(${g.text})`).toEqual(g.q); // the query string says exactly what was generated
      }
      // Drawn from its own generator so the queries are the same whatever the share.
      comparePg = PG_SHARE >= 1 || pgPick.next() < PG_SHARE;
      if (comparePg) pgQueries++;
      if (n > 0 && n % 50 === 0) {
        process.stderr.write(
          `[search-equivalence] ${n}/${QUERIES} queries, ${pages} pages, ${Math.round((performance.now() - started) / 1000)} s\n`,
        );
      }
      const direction: SortDirection = rng.chance(0.5) ? "asc" : "desc";
      const limit = rng.weighted([
        [() => rng.int(1, 10), 3],
        [() => rng.int(11, 100), 4],
        [() => rng.int(101, 500), 3],
      ] as const)();
      const expected = all
        .get(tenantId)!
        .filter((r) => matchesQuery(r, q))
        .sort((a, b) => compareForSort(a, b, direction));
      if (expected.length) nonEmpty++;
      const context = () =>
        `query ${n} (${g.text ?? JSON.stringify(q, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}), tenant ${tenantId}, ${direction}, limit ${limit}`;

      const comparePage = async (after: PagePosition | null, want: StoredRecord[], withTotal: boolean, where: string) => {
        const esPage = await run(es, "es", g.shape, tenantId, q, direction, after, limit, withTotal);
        expect(ids(esPage.records), `Elasticsearch, ${where}, ${context()}`).toEqual(ids(want));
        if (want.length) {
          expect(esPage.records[0]).toEqual(want[0]);
          expect(esPage.records.at(-1)).toEqual(want.at(-1));
        }
        if (withTotal) {
          totalsCompared++;
          const exact = BigInt(expected.length);
          expect(esPage.total).toBe(exact < 10_000n ? exact : 10_000n);
          expect(esPage.totalIsLowerBound).toBe(exact > 10_000n);
        }
        pages++;
        if (!comparePg) return;
        const pgPage = await run(pgBackend, "pg", g.shape, tenantId, q, direction, after, limit, withTotal);
        expect(ids(pgPage.records), `PostgreSQL, ${where}, ${context()}`).toEqual(ids(want));
        if (withTotal) expect(pgPage.total).toBe(BigInt(expected.length));
      };

      // From the start, page by page (up to MAX_PAGES), as a client would.
      let after: PagePosition | null = null;
      for (let p = 0; p < MAX_PAGES; p++) {
        const pos: PagePosition | null = after;
        const start: number = pos === null ? 0 : expected.findIndex((r) => compareForSort(r, { ...r, ...pos }, direction) > 0);
        const want: StoredRecord[] = start < 0 ? [] : expected.slice(start, start + limit);
        await comparePage(after, want, p === 0 && rng.chance(0.5), `page ${p + 1}`);
        if (want.length < limit) break;
        const last: StoredRecord = want.at(-1)!;
        after = { occurredAt: last.occurredAt, sequence: last.sequence };
      }
      // Resume from a position anywhere: a matching event's, or one that is no event's.
      if (expected.length && rng.chance(0.5)) {
        const r = rng.pick(expected);
        const pos: PagePosition = rng.chance(0.5)
          ? { occurredAt: r.occurredAt, sequence: r.sequence }
          : { occurredAt: r.occurredAt + BigInt(rng.int(-1, 1)), sequence: BigInt(rng.int(0, N)) };
        const want = expected.filter((x) => compareForSort(x, { ...x, ...pos }, direction) > 0).slice(0, limit);
        await comparePage(pos, want, false, "resumed");
      }
    }

    process.stderr.write(
      `[search-equivalence] compared ${QUERIES} queries (${queriesAsText} as query strings, ${nonEmpty} with results), ` +
        `${pages} pages, ${totalsCompared} totals; PostgreSQL compared on ${pgQueries} of the queries, ` +
        `${Math.round((performance.now() - started) / 1000)} s\n`,
    );
    const rows = [...latencies.entries()].sort(([a], [b]) => a.localeCompare(b));
    const fmt = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(1)).padStart(7);
    let table =
      `[search-equivalence] search latency per page, ms (${N} events):\n` +
      `  ${"shape".padEnd(26)} ${"pages".padStart(6)} ${"ES p50".padStart(7)} ${"ES p99".padStart(7)} ${"PG p50".padStart(7)} ${"PG p99".padStart(7)}\n`;
    for (const [shape, l] of rows) {
      table += `  ${shape.padEnd(26)} ${String(l.es.length).padStart(6)} ${fmt(percentile(l.es, 50))} ${fmt(percentile(l.es, 99))} ${fmt(percentile(l.pg, 50))} ${fmt(percentile(l.pg, 99))}\n`;
    }
    process.stderr.write(table);
    expect(pages).toBeGreaterThanOrEqual(QUERIES);
    expect(nonEmpty).toBeGreaterThan(QUERIES / 3);
  }, 1_800_000);

  it("isolates tenants: the other tenant's ids find nothing, shared ids find only the own event", async () => {
    const aIds = all.get(TENANT_A)!.map((r) => r.id);
    const bIds = new Set(all.get(TENANT_B)!.map((r) => r.id));
    const onlyA = aIds.filter((id) => !bIds.has(id)).slice(0, 100);
    const shared = aIds.filter((id) => bIds.has(id)).slice(0, 100);
    expect(shared.length).toBeGreaterThan(0);
    for (const backend of [es, pgBackend]) {
      const none = await backend.search(TENANT_B, { conditions: [{ kind: "terms", field: "id", values: onlyA }] }, "asc", null, 500, true);
      expect(none.records).toEqual([]);
      expect(none.total).toBe(0n);
      const own = await backend.search(TENANT_B, { conditions: [{ kind: "terms", field: "id", values: shared }] }, "asc", null, 500, false);
      expect(own.records.length).toBe(shared.length);
      expect(own.records.every((r) => r.tenantId === TENANT_B)).toBe(true);
    }
  });

  it("reports totals above 10,000 as a lower bound (Elasticsearch) and exactly (PostgreSQL)", async () => {
    const count = all.get(TENANT_A)!.length;
    const esPage = await es.search(TENANT_A, { conditions: [] }, "desc", null, 1, true);
    const pgPage = await pgBackend.search(TENANT_A, { conditions: [] }, "desc", null, 1, true);
    expect(pgPage.total).toBe(BigInt(count));
    expect(pgPage.totalIsLowerBound).toBe(false);
    if (count > 10_000) {
      expect(esPage.total).toBe(10_000n);
      expect(esPage.totalIsLowerBound).toBe(true);
    } else {
      expect(esPage.total).toBe(BigInt(count));
      expect(esPage.totalIsLowerBound).toBe(false);
    }
    const noTotal = await es.search(TENANT_A, { conditions: [] }, "desc", null, 1, false);
    expect(noTotal.total).toBeNull();
    expect(noTotal.totalIsLowerBound).toBe(false);
  });

  it("positions outside what Elasticsearch can hold page like PostgreSQL does", async () => {
    const early = { occurredAt: parseMicros("1960-01-01T00:00:00Z"), sequence: 1n };
    const late = { occurredAt: parseMicros("2300-01-01T00:00:00Z"), sequence: 1n };
    for (const [pos, dir] of [
      [early, "asc"],
      [early, "desc"],
      [late, "asc"],
      [late, "desc"],
    ] as const) {
      const a = await es.search(TENANT_B, { conditions: [] }, dir, pos, 7, false);
      const b = await pgBackend.search(TENANT_B, { conditions: [] }, dir, pos, 7, false);
      expect(ids(a.records)).toEqual(ids(b.records));
    }
    const q = { conditions: parseQueryString("occurred_at>=1900-01-01 occurred_at<2999-01-01") };
    const a = await es.search(TENANT_B, q, "asc", null, 5, true);
    const b = await pgBackend.search(TENANT_B, q, "asc", null, 5, true);
    expect(ids(a.records)).toEqual(ids(b.records));
  });

  it("an alias without indices searches as empty", async () => {
    const empty = new ElasticsearchSearchBackend(client, pool, { readAlias: `${names.prefix}-nothing-here` });
    expect(await empty.search(TENANT_A, { conditions: [] }, "asc", null, 10, true)).toEqual({
      records: [],
      total: 0n,
      totalIsLowerBound: false,
    });
  });

  it("waitForPosition follows index_progress; PostgreSQL is always caught up", async () => {
    const head = heads.get(TENANT_A)!;
    expect(await es.waitForPosition(TENANT_A, head, 1000)).toBe(true);
    expect(await es.waitForPosition(TENANT_A, 1n, 0)).toBe(true);
    let t = performance.now();
    expect(await es.waitForPosition(TENANT_A, head + 1n, 120)).toBe(false);
    expect(performance.now() - t).toBeGreaterThanOrEqual(115);
    // A tenant the indexer never saw has indexed nothing.
    expect(await es.waitForPosition("tenant-unknown", 1n, 30)).toBe(false);
    expect(await es.waitForPosition("tenant-unknown", 0n, 0)).toBe(true);

    t = performance.now();
    const waiting = es.waitForPosition(TENANT_A, head + 5n, 5000);
    setTimeout(() => {
      void pool.query("UPDATE index_progress SET indexed_sequence = $2 WHERE tenant_id = $1", [TENANT_A, (head + 5n).toString()]);
    }, 150);
    expect(await waiting).toBe(true);
    const waited = performance.now() - t;
    expect(waited).toBeGreaterThanOrEqual(140);
    expect(waited).toBeLessThan(1000);
    await pool.query("UPDATE index_progress SET indexed_sequence = $2 WHERE tenant_id = $1", [TENANT_A, head.toString()]);

    expect(await pgBackend.waitForPosition(TENANT_A, head + 1000n, 0)).toBe(true);
    expect(await pgBackend.indexStatus(TENANT_A)).toEqual({
      backend: "postgresql",
      committedPosition: head,
      indexedPosition: head,
      lagEvents: 0n,
      lagSeconds: 0,
      lastReconcile: null,
    });
  });
});
