// Binary ingest requests are read with the wire types of
// proto/auditlog/internal/v1 (the open content decoded by the service
// itself), JSON requests with the contract's types. Whatever the protocol,
// the same event must be stored the same: a resend of an event in the other
// format is a DUPLICATE (its content digest is the same), never a CONFLICT.
import { create, type JsonObject } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect, it } from "vitest";
import { AppendRequestWireSchema, EventWireSchema } from "../../gen/auditlog/internal/v1/ingest_wire_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { EventStatus, IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { bearerInterceptor, forEachServiceTransport } from "../support/transports.ts";

const METADATA: JsonObject = {
  plan: "pro",
  "1": "integer-like keys come first in a JS object",
  // Computed: an own key named __proto__, not the literal's prototype.
  ["__proto__"]: { polluted: true },
  nested: { list: [1, -1.5, "é", true, null, { deep: ["日本語", 1e300] }], empty: {} },
  notes: "x".repeat(200),
};
const CHANGES = { before: { role: "viewer" }, after: { role: "admin", groups: ["a", "b"] } };

forEachServiceTransport((s) => {
  const event = (id: string) => ({
    id: `${s.t.protocol}-${id}`,
    occurredAt: { seconds: 1_764_000_000n, nanos: 123_456_000 },
    action: "user.role_changed",
    actor: { id: "user-1" },
    changes: CHANGES,
    metadata: METADATA,
  });
  const json = () =>
    createConnectTransport({ baseUrl: s.url, httpVersion: "1.1", useBinaryFormat: false, interceptors: [bearerInterceptor(s.tenant.all)] });

  it("stores the open content as sent, and the same event in JSON is a DUPLICATE (and the other way round)", async () => {
    const { ingest, query } = s.clients(s.tenant.all);
    const jsonIngest = createClient(IngestService, json());
    const jsonQuery = createClient(QueryService, json());

    const binaryFirst = await ingest.append({ events: [event("b1")] });
    expect(binaryFirst.summary).toMatchObject({ accepted: 1n, duplicates: 0n });
    const jsonFirst = await jsonIngest.append({ events: [event("j1")] });
    expect(jsonFirst.summary).toMatchObject({ accepted: 1n, duplicates: 0n });

    const again = await jsonIngest.append({ events: [event("b1")] });
    expect(again.summary!.results.map((r) => r.status)).toEqual([EventStatus.DUPLICATE]);
    const againBinary = await ingest.append({ events: [event("j1")] });
    expect(againBinary.summary!.results.map((r) => r.status)).toEqual([EventStatus.DUPLICATE]);

    for (const id of ["b1", "j1"]) {
      const viaBinary = (await query.getEvent({ id: `${s.t.protocol}-${id}` })).event!.event!;
      const viaJson = (await jsonQuery.getEvent({ id: `${s.t.protocol}-${id}` })).event!.event!;
      expect(viaBinary.metadata).toEqual(METADATA);
      expect(Object.hasOwn(viaBinary.metadata!, "__proto__")).toBe(true);
      expect(viaBinary.changes).toMatchObject(CHANGES);
      expect(viaJson.metadata).toEqual(viaBinary.metadata);
    }
    const verified = await query.verifyChain({});
    expect(verified.ok).toBe(true);
  });

  it("refuses open content that is not a Struct: INVALID_ARGUMENT naming the field, nothing stored", async () => {
    // The contract's AppendRequest on the wire, its second event's metadata garbage.
    const garbage = new BinaryWriter().tag(1, WireType.LengthDelimited).uint32(50).finish();
    const ok = { id: `${s.t.protocol}-bad-0`, occurredAt: { seconds: 1_764_000_000n }, action: "a.b", actor: { id: "u" } };
    const request = create(AppendRequestWireSchema, {
      events: [create(EventWireSchema, ok), create(EventWireSchema, { ...ok, id: `${s.t.protocol}-bad-1`, metadata: [garbage] })],
    });
    const transport = s.t.transport(s.url, [bearerInterceptor(s.tenant.all)]);
    const append = { ...IngestService.method.append, input: AppendRequestWireSchema } as unknown as typeof IngestService.method.append;
    const err = await transport.unary(append, undefined, undefined, undefined, request as never).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toMatch(/^events\[1\]\.metadata: cannot decode metadata: /);
    expect(err?.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(["events[1].metadata"]);
    const { query } = s.clients(s.tenant.all);
    const missing = await query.getEvent({ id: `${s.t.protocol}-bad-0` }).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(missing?.code).toBe(Code.NotFound);
  });
});
