// One RPC read with two request types: the contract's for JSON, and a
// "binary twin" with the same wire format for binary requests (gRPC,
// gRPC-Web, Connect with application/proto or application/connect+proto).
// The twin leaves part of the message for the handler to decode itself
// (IngestService: the open content of events, proto/auditlog/internal/v1),
// which the binary format allows because a message field and a bytes field
// are encoded alike; JSON does not, so JSON requests keep the contract's
// type. Both handlers are registered with the same request path; before the
// server serves them, mergeBinaryTwins puts each pair behind one handler
// that picks by the request's content type.
//
// A binary call's context, interceptors and request gate see the twin's
// descriptor, a copy of the method's (same service, same name): compare
// methods by service and name, never by identity (ingest-rate-gate.ts).
import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";

const twins = new WeakSet<DescMethod>();

/** `method` reading its requests as `input`, to be registered beside `method` itself (router.rpc). */
export function binaryTwin(method: DescMethod, input: DescMessage): DescMethod {
  const twin = { ...method, input } as DescMethod;
  twins.add(twin);
  return twin;
}

/** JSON in every protocol: application/json, application/connect+json, application/grpc+json, application/grpc-web+json. */
function isJson(req: UniversalServerRequest): boolean {
  const type = (req.header.get("content-type") ?? "").toLowerCase();
  return /^application\/([a-z-]+\+)?json(;|$)/.test(type) || req.method === "GET";
}

function pickByFormat(json: UniversalHandler, binary: UniversalHandler): UniversalHandler {
  const handler = (req: UniversalServerRequest) => (isJson(req) ? json(req) : binary(req));
  return Object.assign(handler, json);
}

/** Replaces each handler of a twin and the handler of its method by one that serves binary requests with the twin, in place. */
export function mergeBinaryTwins(handlers: UniversalHandler[]): void {
  for (let i = handlers.length - 1; i >= 0; i--) {
    const twin = handlers[i]!;
    if (!twins.has(twin.method)) continue;
    const at = handlers.findIndex((h) => h !== twin && h.requestPath === twin.requestPath && !twins.has(h.method));
    if (at < 0) throw new Error(`${twin.requestPath}: a binary twin needs its method registered too`);
    handlers[at] = pickByFormat(handlers[at]!, twin);
    handlers.splice(i, 1);
  }
}
