import { createConnectRouter } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import { describe, expect, it } from "vitest";
import { AppendRequestWireSchema } from "../../gen/auditlog/internal/v1/ingest_wire_pb.js";
import { IngestService } from "../../gen/auditlog/v1/ingest_pb.js";
import { binaryTwin, mergeBinaryTwins } from "../../src/server/binary-twin.ts";

const never = () => {
  throw new Error("not called");
};

function request(contentType: string | null, method = "POST"): UniversalServerRequest {
  const header = new Headers();
  if (contentType) header.set("content-type", contentType);
  return {
    httpVersion: "1.1",
    method,
    url: "http://x/auditlog.v1.IngestService/Append",
    header,
    body: undefined,
    signal: new AbortController().signal,
  } as never;
}

describe("mergeBinaryTwins", () => {
  it("leaves one handler per path, serving JSON with the method and binary requests with its twin", async () => {
    const router = createConnectRouter();
    router.service(IngestService, { append: never, ingest: never });
    router.rpc(binaryTwin(IngestService.method.append, AppendRequestWireSchema), never as never);
    expect(router.handlers).toHaveLength(3);
    const at = router.handlers.findIndex((h) => h.method === IngestService.method.append);
    const other = router.handlers.find((h) => h.method === IngestService.method.ingest);
    const calls: string[] = [];
    const spy = (name: string, h: (typeof router.handlers)[number]) =>
      Object.assign(async (req: UniversalServerRequest) => (calls.push(name), h(req)), h);
    router.handlers[at] = spy("json", router.handlers[at]!);
    router.handlers[2] = spy("twin", router.handlers[2]!);
    mergeBinaryTwins(router.handlers);
    expect(router.handlers).toHaveLength(2);
    const merged = router.handlers[at];
    expect(router.handlers).toContain(other);
    expect(merged!.method).toBe(IngestService.method.append);
    expect(merged!.requestPath).toBe("/auditlog.v1.IngestService/Append");
    for (const [type, want] of [
      ["application/json", "json"],
      ["application/json; charset=utf-8", "json"],
      ["application/connect+json", "json"],
      ["application/grpc+json", "json"],
      ["Application/GRPC-Web+JSON", "json"],
      ["application/proto", "twin"],
      ["application/connect+proto", "twin"],
      ["application/grpc", "twin"],
      ["application/grpc+proto", "twin"],
      ["application/grpc-web+proto", "twin"],
      ["application/jsonx", "twin"],
      [null, "twin"],
    ] as const) {
      calls.length = 0;
      await merged!(request(type)).catch(() => undefined);
      expect(calls, String(type)).toEqual([want]);
    }
    calls.length = 0;
    await merged!(request(null, "GET")).catch(() => undefined);
    expect(calls).toEqual(["json"]);
  });

  it("refuses a twin whose method is not registered", () => {
    const router = createConnectRouter();
    router.rpc(binaryTwin(IngestService.method.append, AppendRequestWireSchema), never as never);
    expect(() => mergeBinaryTwins(router.handlers)).toThrow(/a binary twin needs its method registered too/);
  });
});
