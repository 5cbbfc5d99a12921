// A unary call whose body is sent as given, bytes the typed clients could
// never produce (a message that is not protobuf, JSON that is not JSON), over
// any of the three protocols, and its outcome decoded with
// @connectrpc/connect's own protocol helpers: Connect's JSON error body, gRPC
// trailers (or trailers-only headers), gRPC-Web's trailer frame. So a test
// can tell whether a server read the body at all.
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";

export type RawProtocol = "grpc" | "grpc-web" | "connect";

export type RawOutcome = {
  httpStatus: number;
  /** The call's error; undefined when it succeeded. */
  error: ConnectError | undefined;
};

/** Bytes that are no protobuf message: field 15 with wire type 7, which does not exist. */
export const NOT_PROTOBUF = new Uint8Array([0x7f, 0xff, 0xff, 0xff]);
/** What a Connect JSON call sends instead of NOT_PROTOBUF. */
export const NOT_JSON = new TextEncoder().encode('{"events": [ not json');

function envelope(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** The trailer frame of a gRPC-Web response body. */
function grpcWebTrailer(body: Uint8Array): Headers | undefined {
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body[at]!;
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    const data = body.subarray(at + 5, at + 5 + length);
    if ((flags & trailerFlag) === trailerFlag) return trailerParse(data);
    at += 5 + length;
  }
  return undefined;
}

function grpcCall(baseUrl: string, path: string, headers: Record<string, string>, body: Uint8Array): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc+proto",
      te: "trailers",
      ...headers,
    });
    let status = 0;
    const head = new Headers();
    const tail = new Headers();
    const copy = (into: Headers, from: http2.IncomingHttpHeaders) => {
      for (const [k, v] of Object.entries(from)) if (!k.startsWith(":") && v !== undefined) into.set(k, String(v));
    };
    req.on("response", (h) => {
      status = Number(h[":status"]);
      copy(head, h);
    });
    req.on("trailers", (t) => copy(tail, t));
    req.on("data", () => {});
    req.on("error", reject);
    req.on("close", () => {
      session.close();
      resolve({ httpStatus: status, error: findTrailerError(tail.has("grpc-status") ? tail : head) });
    });
    req.end(envelope(body));
  });
}

/** Calls `path` (e.g. "/auditlog.v1.IngestService/Append") with `message` as its body, unencoded. */
export async function rawUnaryCall(
  protocol: RawProtocol,
  baseUrl: string,
  path: string,
  message: Uint8Array,
  headers: Record<string, string> = {},
): Promise<RawOutcome> {
  if (protocol === "grpc") return grpcCall(baseUrl, path, headers, message);
  if (protocol === "connect") {
    const res = await fetch(baseUrl + path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: message });
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (res.status === 200) return { httpStatus: 200, error: undefined };
    const fallback = new ConnectError(`HTTP ${res.status}`, Code.Unknown);
    return { httpStatus: res.status, error: errorFromJsonBytes(bytes, res.headers, fallback) };
  }
  const res = await fetch(baseUrl + path, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", ...headers },
    body: envelope(message),
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  // Trailers-only: the status is in the headers; otherwise in the body's trailer frame.
  const trailer = res.headers.has("grpc-status") ? res.headers : grpcWebTrailer(bytes);
  if (!trailer) throw new Error(`gRPC-Web response without a status (HTTP ${res.status})`);
  return { httpStatus: res.status, error: findTrailerError(trailer) };
}
