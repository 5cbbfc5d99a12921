// connect-es reports a request message that is not valid protobuf binary as
// INTERNAL ("parse binary: ..."), before any interceptor runs. For our users
// it is a client mistake, so this wrapper rewrites that status to
// INVALID_ARGUMENT on the way out, for gRPC (status in headers or trailers)
// and gRPC-Web (status in the body's trailer frame). The message is kept.
// The Connect protocol (application/proto unary, application/connect+proto
// streams) carries the error in the body as JSON; remapConnectParseFailures
// rewrites it one level up, on the universal handler's response. JSON
// requests are not affected (they fail as invalid_argument already).
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
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

type ConnectErrorJson = { code?: unknown; message?: unknown };

function isConnectParseFailure(e: ConnectErrorJson | undefined): boolean {
  return e?.code === "internal" && typeof e.message === "string" && e.message.startsWith("parse binary");
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    return undefined;
  }
}

async function* fixEndStream(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    // Each chunk is one envelope; 0x02 is an uncompressed end-stream message.
    const end =
      chunk.length >= 5 && chunk[0] === 0x02 ? (parseJson(chunk.subarray(5)) as { error?: ConnectErrorJson } | undefined) : undefined;
    if (end?.error && isConnectParseFailure(end.error)) {
      const payload = Buffer.from(JSON.stringify({ ...end, error: { ...end.error, code: "invalid_argument" } }));
      const head = Buffer.alloc(5);
      head[0] = 0x02;
      head.writeUInt32BE(payload.length, 1);
      yield Buffer.concat([head, payload]);
    } else {
      yield chunk;
    }
  }
}

async function fixUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (res.status !== 500 || !res.body) return res;
  const chunks: Uint8Array[] = [];
  for await (const c of res.body) chunks.push(c);
  let body = Buffer.concat(chunks);
  const error = parseJson(body) as ConnectErrorJson | undefined;
  if (!isConnectParseFailure(error))
    return {
      ...res,
      body: (async function* () {
        yield body;
      })(),
    };
  body = Buffer.from(JSON.stringify({ ...error, code: "invalid_argument" }));
  const header = new Headers(res.header);
  header.set("content-length", String(body.length));
  return {
    ...res,
    status: 400,
    header,
    body: (async function* () {
      yield body;
    })(),
  };
}

/** The handler, answering an unparsable Connect-protocol binary request with invalid_argument instead of internal. */
export function remapConnectParseFailures(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const res = await handler(req);
    const type = req.header.get("content-type") ?? "";
    // An error response's body may be compressed (content-encoding): left as it is.
    if (res.header?.get("content-encoding") || res.header?.get("connect-content-encoding")) return res;
    if (type.startsWith("application/proto")) return fixUnary(res);
    if (type.startsWith("application/connect+proto") && res.body) return { ...res, body: fixEndStream(res.body) };
    return res;
  };
  return Object.assign(wrapped, handler);
}
