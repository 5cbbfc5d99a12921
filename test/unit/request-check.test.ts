import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AppendRequestSchema, IngestRequestSchema } from "../../gen/auditlog/v1/ingest_pb.js";
import { CreateApiKeyRequestSchema, CreateTenantRequestSchema } from "../../gen/auditlog/v1/admin_pb.js";
import { GetEventRequestSchema, SearchEventsRequestSchema } from "../../gen/auditlog/v1/query_pb.js";
import { requestViolation } from "../../src/domain/request-check.ts";
import { timestampJsonViolation } from "../../src/domain/strict-json.ts";
import { strictJsonDecoder } from "../../src/server/strict-json.ts";

describe("requestViolation", () => {
  it("finds nothing wrong with ordinary requests", () => {
    expect(requestViolation(GetEventRequestSchema, create(GetEventRequestSchema, { id: "e1" }))).toBeNull();
    const search = create(SearchEventsRequestSchema, {
      filter: { actorIds: ["u1"], metadata: [{ key: "plan", values: ["pro"] }], occurredAfter: { seconds: 1n, nanos: 999_999_999 } },
    });
    expect(requestViolation(SearchEventsRequestSchema, search)).toBeNull();
  });

  it.each([
    ["a plain string", GetEventRequestSchema, { id: "a\u0000" }, "id"],
    ["a repeated string", SearchEventsRequestSchema, { filter: { actorIds: ["ok", "x\u0000"] } }, "filter.actor_ids[1]"],
    [
      "a nested message's string",
      SearchEventsRequestSchema,
      { filter: { metadata: [{ key: "k", values: ["\u0000"] }] } },
      "filter.metadata[0].values[0]",
    ],
    ["the page token", SearchEventsRequestSchema, { pageToken: "\u0000" }, "page_token"],
    ["an admin name", CreateTenantRequestSchema, { id: "t1", name: "n\u0000" }, "name"],
  ] as const)("names NUL in %s", (_name, schema, init, field) => {
    const v = requestViolation(schema, create(schema as never, init as never));
    expect(v).toEqual({ field, reason: expect.stringMatching(/NUL/) });
  });

  it.each([
    ["negative nanos", { occurredAfter: { seconds: 1n, nanos: -1 } }, "filter.occurred_after"],
    ["nanos of a second", { occurredBefore: { seconds: 1n, nanos: 1_000_000_000 } }, "filter.occurred_before"],
    ["past year 9999", { occurredBefore: { seconds: 253_402_300_800n } }, "filter.occurred_before"],
    ["before year 1", { occurredAfter: { seconds: -62_135_596_801n } }, "filter.occurred_after"],
  ])("names an invalid Timestamp (%s)", (_name, filter, field) => {
    const v = requestViolation(SearchEventsRequestSchema, create(SearchEventsRequestSchema, { filter }));
    expect(v?.field).toBe(field);
  });

  it("names an invalid expires_at", () => {
    const v = requestViolation(CreateApiKeyRequestSchema, create(CreateApiKeyRequestSchema, { expiresAt: { seconds: 1n, nanos: -5 } }));
    expect(v?.field).toBe("expires_at");
  });

  it("does not enter the skipped types (events are validated one by one)", () => {
    const req = create(AppendRequestSchema, { events: [{ id: "a\u0000", occurredAt: { seconds: 1n, nanos: -1 } }] });
    expect(requestViolation(AppendRequestSchema, req)?.field).toBe("events[0].id");
    expect(requestViolation(AppendRequestSchema, req, new Set(["auditlog.v1.Event"]))).toBeNull();
  });
});

describe("timestampJsonViolation", () => {
  const event = (occurredAt: unknown) => ({ id: "x", occurredAt, action: "a.b", actor: { id: "u" } });

  it("names an impossible date in an event, by JSON or proto field name", () => {
    expect(
      timestampJsonViolation(AppendRequestSchema, { events: [event("2026-01-01T00:00:00Z"), event("2026-02-30T00:00:00Z")] })?.field,
    ).toBe("events[1].occurred_at");
    expect(timestampJsonViolation(IngestRequestSchema, { events: [{ occurred_at: "2026-01-01T24:00:00Z" }] })?.field).toBe(
      "events[0].occurred_at",
    );
  });

  it("names impossible filter bounds and expiry", () => {
    expect(timestampJsonViolation(SearchEventsRequestSchema, { filter: { occurredBefore: "2026-06-31T00:00:00Z" } })?.field).toBe(
      "filter.occurred_before",
    );
    expect(timestampJsonViolation(SearchEventsRequestSchema, { filter: { occurred_after: "2025-02-29T00:00:00Z" } })?.field).toBe(
      "filter.occurred_after",
    );
    expect(timestampJsonViolation(CreateApiKeyRequestSchema, { expiresAt: "2099-04-31T00:00:00Z" })?.field).toBe("expires_at");
  });

  it("passes valid times, absent ones, strings that only look like times, and leaves other mistakes to protobuf-es", () => {
    expect(timestampJsonViolation(AppendRequestSchema, { events: [event("2024-02-29T23:59:59.999999999+01:00")] })).toBeNull();
    expect(
      timestampJsonViolation(AppendRequestSchema, {
        events: [event(null), { ...event(undefined), message: "2026-02-30T00:00:00Z", metadata: { t: "2026-02-30T00:00:00Z" } }],
      }),
    ).toBeNull();
    for (const weird of [null, 42, "text", [], { events: "no" }, { events: [null, 1, "x"] }, { events: [event(12345)] }]) {
      expect(timestampJsonViolation(AppendRequestSchema, weird)).toBeNull();
    }
  });
});

describe("strictJsonDecoder", () => {
  const decoder = strictJsonDecoder(AppendRequestSchema);
  const bytes = (text: string) => new TextEncoder().encode(text);

  it("returns the text when every time is valid, or when it is not JSON (protobuf-es reports that)", () => {
    for (const text of ['{"events":[{"occurredAt":"2024-02-29T00:00:00Z","message":"say \\"hi\\""}]}', "{not json", ""]) {
      expect(decoder.decode(bytes(text))).toBe(text);
    }
  });

  it("refuses an impossible date, also one written with escapes", () => {
    for (const text of ['{"events":[{"occurredAt":"2026-02-30T00:00:00Z"}]}', '{"events":[{"occurredAt":"\\u0032026-02-30T00:00:00Z"}]}']) {
      expect(() => decoder.decode(bytes(text))).toThrow(/events\[0\]\.occurred_at/);
    }
  });

  it("lets an impossible date in a string field through", () => {
    const text = '{"events":[{"occurredAt":"2026-02-28T00:00:00Z","message":"2026-02-30T00:00:00Z"}]}';
    expect(decoder.decode(bytes(text))).toBe(text);
  });
});
