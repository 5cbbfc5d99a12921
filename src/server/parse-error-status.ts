// connect-es reports a request message that is not valid protobuf binary as
// INTERNAL ("parse binary: ..."), before any interceptor runs. For our users
// it is a client mistake, so this wrapper rewrites that status to
// INVALID_ARGUMENT on the way out, for gRPC (status in headers or trailers)
// and gRPC-Web (status in the body's trailer frame). The message is kept.
// Connect-protocol binary requests (application/proto) still get "internal"
// for this one case; JSON requests are not affected (they fail as
// invalid_argument already).
import type { NodeRequest, NodeResponse } from "./listener.ts";

const INTERNAL = "13";
const INVALID_ARGUMENT = "3";

type Headers = Record<string, string | string[] | number | undefined>;

function isParseFailure(headers: Headers): boolean {
  const status = headers["grpc-status"];
  const message = headers["grpc-message"];
  return String(status) === INTERNAL && typeof message === "string" && decodeURIComponent(message).startsWith("parse binary");
}

function fixHeaders(headers: unknown): void {
  if (headers && typeof headers === "object" && !Array.isArray(headers) && isParseFailure(headers as Headers)) {
    (headers as Headers)["grpc-status"] = INVALID_ARGUMENT;
  }
}

/** Rewrites a gRPC-Web trailer frame (flag 0x80) that carries the parse failure. */
export function fixGrpcWebTrailerFrame(chunk: Uint8Array): Uint8Array {
  if (chunk.length < 5 || chunk[0] !== 0x80) return chunk;
  const text = Buffer.from(chunk.subarray(5)).toString("latin1");
  if (!/grpc-status:\s*13\r\n/i.test(text) || !/grpc-message:\s*parse(%20| )binary/i.test(text)) return chunk;
  const body = Buffer.from(text.replace(/grpc-status:\s*13\r\n/i, `grpc-status: ${INVALID_ARGUMENT}\r\n`), "latin1");
  const head = Buffer.alloc(5);
  head[0] = 0x80;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

export function remapParseFailures(req: NodeRequest, res: NodeResponse): void {
  const type = String(req.headers["content-type"] ?? "");
  if (!type.startsWith("application/grpc")) return;
  const writeHead = res.writeHead;
  res.writeHead = function (this: NodeResponse, ...args: unknown[]) {
    for (const a of args) fixHeaders(a);
    return (writeHead as (...a: unknown[]) => NodeResponse).apply(this, args);
  } as NodeResponse["writeHead"];
  const addTrailers = res.addTrailers;
  res.addTrailers = function (this: NodeResponse, headers: unknown) {
    fixHeaders(headers);
    return (addTrailers as (h: unknown) => void).call(this, headers);
  } as NodeResponse["addTrailers"];
  if (type.startsWith("application/grpc-web") && !type.startsWith("application/grpc-web-text")) {
    const write = res.write;
    res.write = function (this: NodeResponse, chunk: unknown, ...rest: unknown[]) {
      const fixed = chunk instanceof Uint8Array ? fixGrpcWebTrailerFrame(chunk) : chunk;
      return (write as (...a: unknown[]) => boolean).call(this, fixed, ...rest);
    } as NodeResponse["write"];
    const end = res.end;
    res.end = function (this: NodeResponse, chunk?: unknown, ...rest: unknown[]) {
      const fixed = chunk instanceof Uint8Array ? fixGrpcWebTrailerFrame(chunk) : chunk;
      return (end as (...a: unknown[]) => NodeResponse).call(this, fixed, ...rest);
    } as NodeResponse["end"];
  }
}
