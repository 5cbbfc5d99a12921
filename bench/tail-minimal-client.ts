// A TailEvents client that decodes only what bench/tail.ts needs of each
// event (its id, received_at and sequence; the other fields are skipped on
// the wire), for runs where the subscriber processes share the machine with
// the service: decoding every field of 100,000 events/s (the metadata
// Struct above all) costs the subscriber processes more CPU than the
// service spends sending them (docs/PERFORMANCE.md, Live tail). The
// messages are a subset of auditlog.v1's (same field numbers), declared here
// at run time, on the same path as QueryService.TailEvents.
import { create, createFileRegistry, type DescService } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  file_google_protobuf_timestamp,
} from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { QueryService } from "../gen/auditlog/v1/query_pb.js";

const field = (name: string, number: number, type: Type, extra: Record<string, unknown> = {}) => ({
  name,
  number,
  type,
  label: Label.OPTIONAL,
  jsonName: name.replace(/_(.)/g, (_, c: string) => c.toUpperCase()),
  ...extra,
});

const file = create(FileDescriptorProtoSchema, {
  name: "bench/tail_minimal.proto",
  package: "auditlog.v1",
  syntax: "proto3",
  dependency: ["google/protobuf/timestamp.proto"],
  messageType: [
    { name: "MinimalEvent", field: [field("id", 1, Type.STRING)] },
    {
      name: "MinimalStoredEvent",
      field: [
        field("event", 1, Type.MESSAGE, { typeName: ".auditlog.v1.MinimalEvent" }),
        field("received_at", 3, Type.MESSAGE, { typeName: ".google.protobuf.Timestamp" }),
        field("sequence", 4, Type.UINT64),
      ],
    },
    {
      name: "MinimalBatch",
      field: [field("events", 1, Type.MESSAGE, { typeName: ".auditlog.v1.MinimalStoredEvent", label: Label.REPEATED })],
    },
    { name: "MinimalHeartbeat", field: [field("position", 1, Type.UINT64)] },
    {
      name: "MinimalResponse",
      oneofDecl: [{ name: "item" }],
      field: [
        field("event", 1, Type.MESSAGE, { typeName: ".auditlog.v1.MinimalStoredEvent", oneofIndex: 0 }),
        field("heartbeat", 2, Type.MESSAGE, { typeName: ".auditlog.v1.MinimalHeartbeat", oneofIndex: 0 }),
        field("batch", 3, Type.MESSAGE, { typeName: ".auditlog.v1.MinimalBatch", oneofIndex: 0 }),
      ],
    },
    {
      name: "MinimalRequest",
      oneofDecl: [{ name: "_after_position" }],
      field: [field("after_position", 2, Type.UINT64, { oneofIndex: 0, proto3Optional: true }), field("max_batch", 4, Type.UINT32)],
    },
  ],
  service: [
    {
      name: "QueryService",
      method: [
        { name: "TailEvents", inputType: ".auditlog.v1.MinimalRequest", outputType: ".auditlog.v1.MinimalResponse", serverStreaming: true },
      ],
    },
  ],
});

const registry = createFileRegistry(file, (name) =>
  name === "google/protobuf/timestamp.proto" ? file_google_protobuf_timestamp : undefined,
);
const MinimalQueryService = registry.getService("auditlog.v1.QueryService") as DescService;

/** What both clients' TailEvents messages have, that bench/tail-subscriber.ts reads. */
export type TailClient = Pick<Client<typeof QueryService>, "tailEvents">;

/** A TailEvents client over gRPC: every field decoded (`full`), or only the subset above (`minimal`). */
export function tailClient(baseUrl: string, decode: "full" | "minimal"): TailClient {
  if (decode === "full") return createClient(QueryService, createGrpcTransport({ baseUrl }));
  // Fields not in the subset are skipped, not kept as unknown fields (a copy of most of each event).
  const transport = createGrpcTransport({ baseUrl, binaryOptions: { readUnknownFields: false } });
  // The subset has the same field names, so what the subscriber reads is where it expects it.
  return createClient(MinimalQueryService, transport) as unknown as TailClient;
}
