import { clone, create, equals } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ActorType, type Event, EventSchema, Outcome, RequestContextSchema, Severity } from "../../gen/auditlog/v1/event_pb.js";
import {
  actorTypeName,
  eventFromRecord,
  outcomeName,
  recordFromEvent,
  SEVERITY_ORDER,
  severityName,
  storedEventFromRecord,
} from "../../src/domain/event-record.ts";
import { chainRecords, fullEvent, minimalEvent } from "./fixtures.ts";

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** What the service promises to give back: defaults applied, nanos truncated, id and context present. */
function normalised(e: Event, id: string): Event {
  const n = clone(EventSchema, e);
  n.id = id;
  n.occurredAt!.nanos = Math.floor(n.occurredAt!.nanos / 1000) * 1000;
  if (n.outcome === Outcome.UNSPECIFIED) n.outcome = Outcome.UNKNOWN;
  if (n.severity === Severity.UNSPECIFIED) n.severity = Severity.INFO;
  n.context ??= create(RequestContextSchema);
  if (n.changes && !n.changes.before && !n.changes.after) n.changes = undefined;
  return n;
}

describe("enum names", () => {
  it("maps UNSPECIFIED outcome to UNKNOWN and keeps the others", () => {
    expect(outcomeName(Outcome.UNSPECIFIED)).toBe("UNKNOWN");
    expect(outcomeName(Outcome.SUCCESS)).toBe("SUCCESS");
    expect(outcomeName(Outcome.FAILURE)).toBe("FAILURE");
    expect(outcomeName(Outcome.DENIED)).toBe("DENIED");
    expect(outcomeName(Outcome.UNKNOWN)).toBe("UNKNOWN");
  });

  it("maps UNSPECIFIED severity to INFO and keeps the others", () => {
    expect(severityName(Severity.UNSPECIFIED)).toBe("INFO");
    expect(severityName(Severity.INFO)).toBe("INFO");
    expect(severityName(Severity.WARNING)).toBe("WARNING");
    expect(severityName(Severity.ERROR)).toBe("ERROR");
    expect(severityName(Severity.CRITICAL)).toBe("CRITICAL");
  });

  it("keeps actor type UNSPECIFIED as is and maps the others", () => {
    expect(actorTypeName(ActorType.UNSPECIFIED)).toBe("UNSPECIFIED");
    expect(actorTypeName(ActorType.USER)).toBe("USER");
    expect(actorTypeName(ActorType.SERVICE)).toBe("SERVICE");
    expect(actorTypeName(ActorType.SYSTEM)).toBe("SYSTEM");
    expect(actorTypeName(99 as ActorType)).toBe("UNSPECIFIED");
  });

  it("orders severities from least to most severe, like the enum numbers", () => {
    expect(SEVERITY_ORDER).toEqual(["INFO", "WARNING", "ERROR", "CRITICAL"]);
    const numbers = SEVERITY_ORDER.map((s) => Severity[s]);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
  });
});

describe("recordFromEvent", () => {
  it("applies the defaults to a minimal event", () => {
    const r = recordFromEvent(minimalEvent({ id: "e-1" }));
    expect(r).toEqual({
      id: "e-1",
      occurredAt: 1_714_979_289_123_456n,
      action: "customer.created",
      actor: { id: "user-1", type: "UNSPECIFIED", name: "", ip: "", userAgent: "", sessionId: "" },
      target: null,
      outcome: "UNKNOWN",
      severity: "INFO",
      context: { requestId: "", traceId: "", source: "", location: "" },
      changes: null,
      metadata: null,
      message: "",
    });
  });

  it("keeps every field of a full event", () => {
    const e = fullEvent();
    const r = recordFromEvent(e);
    expect(r).toEqual({
      id: "01HZX3J5K6M7N8P9Q0R1S2T3U4",
      occurredAt: 1_714_979_289_123_456n,
      action: "customer.address.changed",
      actor: { id: "user-42", type: "USER", name: "Ada Lovelace", ip: "2001:db8::1", userAgent: "Mozilla/5.0", sessionId: "sess-9" },
      target: { type: "customer", id: "cus_123", name: "ACME Ltd" },
      outcome: "DENIED",
      severity: "WARNING",
      context: { requestId: "req-1", traceId: "4bf92f3577b34da6a3ce929d0e0e4736", source: "billing-api", location: "eu-west-1" },
      changes: { before: e.changes!.before, after: e.changes!.after },
      metadata: e.metadata,
      message: "Address changed by Ada — ✓",
    });
  });

  it("assigns a UUIDv7 with the current time when the event has no id", () => {
    const before = Date.now();
    const a = recordFromEvent(minimalEvent());
    const b = recordFromEvent(minimalEvent());
    const after = Date.now();
    expect(a.id).toMatch(UUIDV7);
    expect(b.id).toMatch(UUIDV7);
    expect(a.id).not.toBe(b.id);
    const ms = Number.parseInt(a.id.replaceAll("-", "").slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
  });

  it("keeps a producer-chosen id", () => {
    expect(recordFromEvent(minimalEvent({ id: "my-id:1" })).id).toBe("my-id:1");
  });

  it("truncates nanoseconds to microseconds", () => {
    expect(recordFromEvent(minimalEvent({ occurredAt: { seconds: 10n, nanos: 999 } })).occurredAt).toBe(10_000_000n);
    expect(recordFromEvent(minimalEvent({ occurredAt: { seconds: 10n, nanos: 1_999 } })).occurredAt).toBe(10_000_001n);
    expect(recordFromEvent(minimalEvent({ occurredAt: { seconds: -10n, nanos: 999_999_999 } })).occurredAt).toBe(-9_000_001n);
  });

  it("stores changes only when before or after is present", () => {
    expect(recordFromEvent(minimalEvent({ changes: {} })).changes).toBeNull();
    expect(recordFromEvent(minimalEvent({ changes: { after: { a: 1 } } })).changes).toEqual({ before: null, after: { a: 1 } });
    expect(recordFromEvent(minimalEvent({ changes: { before: { a: 1 } } })).changes).toEqual({ before: { a: 1 }, after: null });
  });

  it("keeps an empty target as a target (present but empty)", () => {
    expect(recordFromEvent(minimalEvent({ target: {} })).target).toEqual({ type: "", id: "", name: "" });
  });

  it("refuses an event without occurred_at or actor", () => {
    const noTime = minimalEvent();
    noTime.occurredAt = undefined;
    const noActor = minimalEvent();
    noActor.actor = undefined;
    expect(() => recordFromEvent(noTime)).toThrow(/validated/);
    expect(() => recordFromEvent(noActor)).toThrow(/validated/);
  });
});

describe("eventFromRecord", () => {
  it("round-trips a full event unchanged (apart from nanos truncation)", () => {
    const e = fullEvent({ occurredAt: { seconds: 1_714_979_289n, nanos: 123_456_789 } });
    const back = eventFromRecord(recordFromEvent(e));
    expect(back.occurredAt!.nanos).toBe(123_456_000);
    expect(equals(EventSchema, back, normalised(e, e.id))).toBe(true);
    // Sanity check of the comparison itself: the untruncated original differs.
    expect(equals(EventSchema, back, e)).toBe(false);
    const otherMetadata = normalised(e, e.id);
    otherMetadata.metadata = { ...otherMetadata.metadata, plan: "free" };
    expect(equals(EventSchema, back, otherMetadata)).toBe(false);
    const otherAfter = normalised(e, e.id);
    otherAfter.changes!.after = { ...otherAfter.changes!.after, street: "Elsewhere" };
    expect(equals(EventSchema, back, otherAfter)).toBe(false);
  });

  it("round-trips a minimal event to its normalised form", () => {
    const e = minimalEvent();
    const r = recordFromEvent(e);
    const back = eventFromRecord(r);
    expect(back.outcome).toBe(Outcome.UNKNOWN);
    expect(back.severity).toBe(Severity.INFO);
    expect(back.target).toBeUndefined();
    expect(back.changes).toBeUndefined();
    expect(back.metadata).toBeUndefined();
    expect(equals(EventSchema, back, normalised(e, r.id))).toBe(true);
  });

  it.each([
    ["every actor type", ActorType.SYSTEM],
    ["unspecified actor type", ActorType.UNSPECIFIED],
  ])("round-trips %s", (_name, type) => {
    const e = fullEvent({ actor: { id: "a", type } });
    expect(eventFromRecord(recordFromEvent(e)).actor!.type).toBe(type);
  });

  it("round-trips each outcome and severity", () => {
    for (const outcome of [Outcome.SUCCESS, Outcome.FAILURE, Outcome.DENIED, Outcome.UNKNOWN]) {
      expect(eventFromRecord(recordFromEvent(fullEvent({ outcome }))).outcome).toBe(outcome);
    }
    for (const severity of [Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL]) {
      expect(eventFromRecord(recordFromEvent(fullEvent({ severity }))).severity).toBe(severity);
    }
  });

  it("round-trips one-sided changes and times before 1970", () => {
    const e = fullEvent({ occurredAt: { seconds: -86_401n, nanos: 5_000 }, changes: { after: { only: "after" } } });
    const back = eventFromRecord(recordFromEvent(e));
    expect(back.changes!.before).toBeUndefined();
    expect(back.changes!.after).toEqual({ only: "after" });
    expect(back.occurredAt!.seconds).toBe(-86_401n);
    expect(back.occurredAt!.nanos).toBe(5_000);
    expect(equals(EventSchema, back, normalised(e, e.id))).toBe(true);
  });
});

describe("storedEventFromRecord", () => {
  it("carries the event and what the server added", () => {
    const [s] = chainRecords([fullEvent()], { tenantId: "t-1", receivedAt: 1_714_979_300_000_001n, prevSequence: 41n });
    const se = storedEventFromRecord(s!);
    expect(se.tenantId).toBe("t-1");
    expect(se.sequence).toBe(42n);
    expect(se.receivedAt!.seconds).toBe(1_714_979_300n);
    expect(se.receivedAt!.nanos).toBe(1_000);
    expect(se.hash).toBe(s!.hash);
    expect(se.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(se.prevHash).toBe("0".repeat(64));
    expect(equals(EventSchema, se.event!, eventFromRecord(s!))).toBe(true);
  });
});
