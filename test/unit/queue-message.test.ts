import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { decodeEvent } from "../../src/services/amqp/queue-message.ts";

describe("decodeEvent (AMQP message bodies)", () => {
  it("reads a protobuf body as protobuf-es reads an Event, open content included", () => {
    const body = Buffer.from(
      toBinary(
        EventSchema,
        create(EventSchema, {
          id: "q-1",
          action: "a.b",
          actor: { id: "u" },
          metadata: { plan: "pro", n: [1, { x: null }] },
          changes: { after: { role: "admin" } },
        }),
      ),
    );
    expect(decodeEvent("application/x-protobuf", body)).toEqual({ event: fromBinary(EventSchema, body) });
  });

  it("refuses open content that is not a Struct, naming the field, and other garbage without one", () => {
    const bad = new BinaryWriter()
      .tag(3, WireType.LengthDelimited)
      .string("a.b")
      .tag(10, WireType.LengthDelimited)
      .bytes(new Uint8Array([0x0a, 0x09]))
      .finish();
    const refused = decodeEvent("application/protobuf", Buffer.from(bad));
    expect(refused).toMatchObject({
      refusal: {
        field: "metadata",
        reason: expect.stringMatching(/^the body is not a protobuf auditlog\.v1\.Event: cannot decode metadata: /),
      },
    });
    expect(decodeEvent("application/protobuf", Buffer.from([0xff, 0xff]))).toMatchObject({ refusal: { field: "" } });
  });
});
