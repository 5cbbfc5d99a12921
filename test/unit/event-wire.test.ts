// The wire types of binary ingest requests (proto/auditlog/internal/v1) must
// keep the wire format of the contract's messages, and an event read with
// them must become the Event protobuf-es decodes from the same bytes.
import { isDeepStrictEqual } from "node:util";
import { create, type DescField, type DescMessage, fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import {
  AppendRequestWireSchema,
  ChangesWireSchema,
  EventWireSchema,
  IngestRequestWireSchema,
} from "../../gen/auditlog/internal/v1/ingest_wire_pb.js";
import { ChangesSchema, EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { AppendRequestSchema, IngestRequestSchema } from "../../gen/auditlog/v1/ingest_pb.js";
import { benchEventJson } from "../../bench/producer.ts";
import { eventFromWire, isEventWire, OpenContentDecodeError } from "../../src/domain/event-wire.ts";

/** What decides a field's wire format. */
function shape(f: DescField): string {
  const of = (m: DescMessage | undefined) => m?.typeName ?? "";
  switch (f.fieldKind) {
    case "scalar":
      return `${f.number} ${f.name} scalar ${f.scalar}`;
    case "enum":
      return `${f.number} ${f.name} enum ${f.enum.typeName}`;
    case "message":
      return `${f.number} ${f.name} message ${of(f.message)}`;
    case "list":
      return `${f.number} ${f.name} list ${f.listKind} ${f.listKind === "message" ? of(f.message) : f.listKind === "enum" ? f.enum.typeName : f.scalar}`;
    case "map":
      return `${f.number} ${f.name} map`;
  }
}

describe("the wire types", () => {
  it("have the contract's fields, but for the open content kept as the bytes of each occurrence", () => {
    const open: Record<string, string> = {
      "auditlog.v1.Event.changes": "9 changes message auditlog.internal.v1.ChangesWire",
      "auditlog.v1.Event.metadata": "10 metadata list scalar 12",
      "auditlog.v1.Changes.before": "1 before list scalar 12",
      "auditlog.v1.Changes.after": "2 after list scalar 12",
      "auditlog.v1.AppendRequest.events": "1 events list message auditlog.internal.v1.EventWire",
      "auditlog.v1.IngestRequest.events": "1 events list message auditlog.internal.v1.EventWire",
    };
    for (const [contract, wire] of [
      [EventSchema, EventWireSchema],
      [ChangesSchema, ChangesWireSchema],
      [AppendRequestSchema, AppendRequestWireSchema],
      [IngestRequestSchema, IngestRequestWireSchema],
    ] as [DescMessage, DescMessage][]) {
      expect(wire.fields.map(shape), wire.typeName).toEqual(contract.fields.map((f) => open[`${contract.typeName}.${f.name}`] ?? shape(f)));
    }
  });
});

/** An event decoded with the wire type (an event on its own: depth 1) and with the contract's. */
function both(bytes: Uint8Array) {
  const wire = fromBinary(EventWireSchema, bytes);
  expect(isEventWire(wire)).toBe(true);
  const event = eventFromWire(wire, 1);
  expect(isEventWire(event)).toBe(false);
  return { event, reference: fromBinary(EventSchema, bytes) };
}

describe("eventFromWire", () => {
  it("gives the Event protobuf-es decodes: 500 bench events, and events with parts missing", () => {
    const events = Array.from({ length: 500 }, (_, i) => fromJson(EventSchema, benchEventJson("wire", 3, i) as never));
    events.push(
      create(EventSchema, { action: "a" }),
      create(EventSchema, { action: "a", changes: {} }),
      create(EventSchema, { action: "a", changes: { before: {} } }),
      create(EventSchema, { action: "a", changes: { after: { x: [1, { y: null }] } }, metadata: {} }),
    );
    for (const e of events) {
      const { event, reference } = both(toBinary(EventSchema, e));
      expect(isDeepStrictEqual(event, reference)).toBe(true);
    }
  });

  it("merges open content sent more than once, and keeps unknown fields, as protobuf-es does", () => {
    const w = new BinaryWriter();
    w.tag(3, WireType.LengthDelimited).string("a.b");
    w.tag(10, WireType.LengthDelimited).bytes(
      toBinary(EventSchema.field.metadata.message!, fromJson(EventSchema.field.metadata.message!, { a: 1 })),
    );
    w.tag(9, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .bytes(new Uint8Array())
      .tag(5, WireType.Varint)
      .uint32(1)
      .join();
    w.tag(99, WireType.Varint).uint32(7);
    w.tag(10, WireType.LengthDelimited).bytes(
      toBinary(EventSchema.field.metadata.message!, fromJson(EventSchema.field.metadata.message!, { b: 2 })),
    );
    w.tag(9, WireType.LengthDelimited).fork().tag(2, WireType.LengthDelimited).bytes(new Uint8Array()).join();
    const { event, reference } = both(w.finish());
    expect(event.metadata).toEqual({ a: 1, b: 2 });
    expect(event.changes).toMatchObject({ before: {}, after: {} });
    expect(event.$unknown).toHaveLength(1);
    expect(isDeepStrictEqual(event, reference)).toBe(true);
  });

  it("names the field whose bytes are not a Struct", () => {
    for (const [no, field] of [
      [10, "metadata"],
      [9, "changes.before"],
    ] as const) {
      const w = new BinaryWriter();
      const garbage = new Uint8Array([0x0a, 0x05, 0x0a]);
      if (no === 10) w.tag(10, WireType.LengthDelimited).bytes(garbage);
      else w.tag(9, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).bytes(garbage).join();
      const bytes = w.finish();
      expect(() => fromBinary(EventSchema, bytes)).toThrow();
      const err = (() => {
        try {
          eventFromWire(fromBinary(EventWireSchema, bytes), 1);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(OpenContentDecodeError);
      expect((err as OpenContentDecodeError).field).toBe(field);
      expect((err as Error).message).toMatch(new RegExp(`^cannot decode ${field}: `));
    }
  });
});
