// An independent gRPC client, as a producer in another language would build
// it: @grpc/grpc-js with stubs loaded from our .proto files (not from the
// server's generated code). For tests and benchmarks, so neither imports the
// other's support code.
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const ROOT = join(import.meta.dirname, "..", "..");

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type GrpcStub = grpc.Client & Record<string, any>;

export function loadAuditlogStubs(): {
  IngestService: grpc.ServiceClientConstructor;
  QueryService: grpc.ServiceClientConstructor;
  AdminService: grpc.ServiceClientConstructor;
} {
  const def = protoLoader.loadSync(["auditlog/v1/ingest.proto", "auditlog/v1/query.proto", "auditlog/v1/admin.proto"], {
    // buf/validate/validate.proto is committed under proto/ too.
    includeDirs: [join(ROOT, "proto")],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    auditlog: { v1: Record<string, grpc.ServiceClientConstructor> };
  };
  const v1 = pkg.auditlog.v1;
  return { IngestService: v1.IngestService!, QueryService: v1.QueryService!, AdminService: v1.AdminService! };
}

export function bearer(secret: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${secret}`);
  return md;
}

export function grpcTarget(url: string): string {
  return new URL(url).host;
}

export function newClient(ctor: grpc.ServiceClientConstructor, url: string): GrpcStub {
  return new ctor(grpcTarget(url), grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  }) as GrpcStub;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

function structValue(v: JsonValue): Record<string, unknown> {
  if (v === null) return { nullValue: "NULL_VALUE" };
  if (typeof v === "boolean") return { boolValue: v };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(structValue) } };
  return { structValue: toStruct(v) };
}

/** A google.protobuf.Struct in the shape @grpc/proto-loader expects: every value spelled out. */
export function toStruct(o: { [k: string]: JsonValue }): Record<string, unknown> {
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, structValue(v)])) };
}
