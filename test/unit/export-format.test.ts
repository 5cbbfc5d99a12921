import { create, toJson } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { parse } from "csv-parse/sync";
import { describe, expect, it } from "vitest";
import { type ActorType, type StoredEvent, StoredEventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { type StoredRecord, storedEventFromRecord } from "../../src/domain/event-record.ts";
import {
  CSV_COLUMNS,
  csvField,
  csvHeader,
  csvRow,
  csvSafeField,
  ndjsonLine,
  ndjsonLineOfRecord,
  timestampJson,
} from "../../src/domain/export-format.ts";
import { chainRecords, fullEvent, minimalEvent } from "./fixtures.ts";

/**
 * The NDJSON object of a StoredEvent flattened to the CSV columns,
 * independently of the implementation: snake_case column -> lowerCamelCase
 * JSON key, envelope fields under `event`, objects as compact JSON text,
 * absent fields as "".
 */
function flatten(json: Record<string, any>): Record<string, string> {
  const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  const top = new Set(["tenant_id", "sequence", "received_at", "hash", "prev_hash"]);
  const out: Record<string, string> = {};
  for (const col of CSV_COLUMNS) {
    const path = col.split(".").map(camel);
    let v: any = top.has(col) ? json : json.event;
    for (const p of path) v = v?.[p];
    out[col] = v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}

function rowsOf(csv: string): Record<string, string>[] {
  return parse(csv, { columns: true, record_delimiter: "\r\n", relax_column_count: false }) as Record<string, string>[];
}

const NASTY = [
  "",
  " leading and trailing ",
  'say "hi"',
  "a,b",
  "line1\nline2",
  "cr\ronly",
  "crlf\r\nend",
  '"',
  ",",
  '=HYPERLINK("http://x")',
  "+1",
  "-2",
  "@SUM(A1)",
  "tab\there",
  "ünïcödé — ✓ 🎉",
  "\u0000nul",
];

function nastyRecords(): StoredRecord[] {
  const events = NASTY.map((s, i) =>
    fullEvent({
      id: `ev-${i}`,
      occurredAt: { seconds: 1_714_979_289n + BigInt(i), nanos: [0, 1000, 120_000_000, 123_456_000][i % 4]! },
      message: s,
      actor: { id: `u${i}`, name: s, userAgent: s, type: i % 4, ip: i % 2 ? "" : "10.0.0.1", sessionId: s },
      target: i % 3 ? { type: "customer", id: s, name: s } : undefined,
      context: { requestId: s, traceId: "", source: s, location: s },
      metadata: i % 5 ? { k: s, [s || "empty"]: [s, i, null, true], nested: { deep: { v: s } } } : undefined,
      changes: i % 2 ? { before: { s }, after: undefined } : { before: undefined, after: { s, n: i / 3 } },
    }),
  );
  return chainRecords([...events, minimalEvent()], { tenantId: "tenant-x" });
}

function nastyEvents(): StoredEvent[] {
  return nastyRecords().map(storedEventFromRecord);
}

describe("NDJSON", () => {
  it("is one proto3 JSON object per line", () => {
    const e = nastyEvents()[4]!;
    const line = ndjsonLine(e);
    expect(line.endsWith("\n")).toBe(true);
    expect(line.slice(0, -1)).not.toMatch(/\n/);
    expect(JSON.parse(line)).toEqual(toJson(StoredEventSchema, e));
  });

  it("is written from the record with exactly the bytes of the message's proto3 JSON", () => {
    const base = nastyRecords();
    const records: StoredRecord[] = [
      ...base,
      // Shapes only stored data can have: empty nested messages, both sides of changes empty.
      { ...base[0]!, target: { type: "", id: "", name: "" }, context: { requestId: "", traceId: "", source: "", location: "" } },
      { ...base[1]!, changes: { before: null, after: null }, metadata: {}, sequence: 0n, id: "" },
      { ...base[2]!, outcome: "SUCCESS", severity: "CRITICAL", actor: { ...base[2]!.actor, type: "SERVICE" }, occurredAt: 0n },
    ];
    for (const r of records) expect(ndjsonLineOfRecord(r)).toBe(ndjsonLine(storedEventFromRecord(r)));
  });
});

describe("CSV", () => {
  it("has a fixed header with every StoredEvent field", () => {
    expect(csvHeader()).toBe(
      "tenant_id,id,sequence,occurred_at,received_at,action,actor.id,actor.type,actor.name,actor.ip,actor.user_agent," +
        "actor.session_id,target.type,target.id,target.name,outcome,severity,context.request_id,context.trace_id," +
        "context.source,context.location,message,metadata,changes.before,changes.after,hash,prev_hash\r\n",
    );
  });

  it("quotes only what RFC 4180 requires and doubles quotes", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField("")).toBe("");
    expect(csvField(" spaced ")).toBe(" spaced ");
    expect(csvField('a"b')).toBe('"a""b"');
    expect(csvField("a,b")).toBe('"a,b"');
    expect(csvField("a\nb")).toBe('"a\nb"');
    expect(csvField("a\rb")).toBe('"a\rb"');
    expect(csvField("=1+1")).toBe("=1+1"); // csvField itself never neutralises; csvRow chooses
  });

  it("ends every line with CRLF", () => {
    const row = csvRow(nastyEvents()[0]!);
    expect(row.endsWith("\r\n")).toBe(true);
  });

  it("parses back with a standard CSV parser into the NDJSON objects, flattened", () => {
    const events = nastyEvents();
    const csv = csvHeader() + events.map((e) => csvRow(e, { keepFormulas: true })).join("");
    const rows = rowsOf(csv);
    expect(rows).toHaveLength(events.length);
    rows.forEach((row, i) => {
      const json = JSON.parse(ndjsonLine(events[i]!)) as Record<string, any>;
      expect(row).toEqual(flatten(json));
    });
    // Neutralised by default, and reversible: one leading ' removed gives the same objects.
    const safeRows = rowsOf(csvHeader() + events.map((e) => csvRow(e)).join(""));
    expect(safeRows).not.toEqual(rows);
    safeRows.forEach((row, i) => {
      const restored = Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v.startsWith("'") ? v.slice(1) : v]));
      expect(restored).toEqual(flatten(JSON.parse(ndjsonLine(events[i]!))));
    });
    // Spot checks of the shapes.
    const full = rows[1]!;
    expect(full["outcome"]).toBe("OUTCOME_DENIED");
    expect(full["severity"]).toBe("SEVERITY_WARNING");
    expect(full["actor.type"]).toBe("ACTOR_TYPE_USER");
    expect(full["occurred_at"]).toBe("2024-05-06T07:08:10.000001Z");
    expect(full["sequence"]).toBe("2");
    expect(JSON.parse(full["metadata"]!)).toEqual(events[1]!.event!.metadata);
    expect(rows[0]!["actor.type"]).toBe(""); // ACTOR_TYPE_UNSPECIFIED is omitted from proto3 JSON
    expect(rows[0]!["target.type"]).toBe(""); // no target
    expect(rows[0]!["metadata"]).toBe(""); // no metadata
  });

  describe("formula injection (OWASP)", () => {
    const LEADING = { "=": "=1+2", "+": "+1", "-": "-2", "@": "@SUM(A1)", tab: "\tx", CR: "\rx", "'": "'=1+2" };

    for (const [name, v] of Object.entries(LEADING)) {
      it(`prefixes a cell starting with ${name} with ' and quotes it`, () => {
        const out = csvSafeField(v);
        expect(out).toBe(`"'${v}"`);
        expect(parse(out + "\r\n", { record_delimiter: "\r\n" })).toEqual([[`'${v}`]]);
      });
    }

    it("doubles quotes inside a neutralised cell", () => {
      expect(csvSafeField('=HYPERLINK("http://x")')).toBe('"\'=HYPERLINK(""http://x"")"');
    });

    it("leaves every other cell as csvField writes it", () => {
      for (const v of ["", "plain", "a=b", " =1", "1", "-", '{"a":"=1"}', "\n=1", 'say "hi"', "a,b", "ünï"]) {
        expect(csvSafeField(v), JSON.stringify(v)).toBe(v === "-" ? `"'-"` : csvField(v));
      }
    });

    it("neutralises every column of a row by default, and none with keepFormulas", () => {
      const e = nastyEvents()[1]!;
      e.event!.action = "-cmd.run";
      e.event!.message = "=cmd|' /C calc'!A0";
      e.event!.actor!.name = "@admin";
      e.event!.context!.source = "+src";
      e.event!.metadata = { note: "=1+2" };
      const safe = rowsOf(csvHeader() + csvRow(e))[0]!;
      expect(safe["action"]).toBe("'-cmd.run");
      expect(safe["message"]).toBe("'=cmd|' /C calc'!A0");
      expect(safe["actor.name"]).toBe("'@admin");
      expect(safe["context.source"]).toBe("'+src");
      expect(safe["metadata"]).toBe('{"note":"=1+2"}'); // JSON text starts with "{": nothing to neutralise
      const raw = rowsOf(csvHeader() + csvRow(e, { keepFormulas: true }))[0]!;
      expect(raw["action"]).toBe("-cmd.run");
      expect(raw["message"]).toBe("=cmd|' /C calc'!A0");
      expect(raw["actor.name"]).toBe("@admin");
      expect(raw).toEqual(flatten(toJson(StoredEventSchema, e) as Record<string, any>));
    });
  });

  it("writes enums it does not know by number, like proto3 JSON", () => {
    const e = nastyEvents()[1]!;
    e.event!.actor!.type = 9 as ActorType;
    expect(rowsOf(csvHeader() + csvRow(e))[0]).toEqual(flatten(toJson(StoredEventSchema, e) as Record<string, any>));
  });

  it("writes timestamps exactly as proto3 JSON does", () => {
    for (const nanos of [0, 1, 999, 1000, 1_000_000, 120_000_000, 123_456_000, 123_456_789, 999_999_999]) {
      for (const seconds of [0n, 1n, 1_714_979_289n, 253_402_300_799n, -62_135_596_800n]) {
        const ts = create(TimestampSchema, { seconds, nanos });
        expect(timestampJson(ts)).toBe(toJson(TimestampSchema, ts));
      }
    }
    expect(timestampJson(undefined)).toBe("");
  });
});
