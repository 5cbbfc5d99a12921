// GET /v1/checkpoint-key: the public key that verifies checkpoints and export
// manifests, unauthenticated, so that anyone can publish and pin it.
//   PEM (SubjectPublicKeyInfo) by default, or `?format=jwk`: a JWK Set
//   {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ..., "kid": <key id>}]}.
// The key id is also in the `x-auditlog-key-id` header. 404 when the service
// has no signing key.
import type { KeyObject } from "node:crypto";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { keyIdOf, publicKeyJwk, publicKeyPem } from "../domain/signing.ts";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

export const CHECKPOINT_KEY_PATH = "/v1/checkpoint-key";

function send(res: NodeResponse, status: number, type: string, body: string, keyId?: string): void {
  const headers: Record<string, string> = { "content-type": type, "content-length": String(Buffer.byteLength(body)) };
  if (keyId) headers["x-auditlog-key-id"] = keyId;
  (res as http.ServerResponse).writeHead(status, headers);
  res.end(body);
}

/** Resolves false (touching nothing) for any other path. */
export function checkpointKeyHandler(publicKey: KeyObject | null): (req: NodeRequest, res: NodeResponse) => Promise<boolean> {
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== CHECKPOINT_KEY_PATH) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(res, 405, "application/json", JSON.stringify({ code: "unimplemented", message: `use GET on ${CHECKPOINT_KEY_PATH}` }));
      return true;
    }
    if (!publicKey) {
      send(res, 404, "application/json", JSON.stringify({ code: "not_found", message: "this service has no checkpoint signing key" }));
      return true;
    }
    const keyId = keyIdOf(publicKey);
    const format = url.searchParams.get("format") ?? "pem";
    if (format === "jwk") send(res, 200, "application/jwk-set+json", JSON.stringify({ keys: [publicKeyJwk(publicKey)] }), keyId);
    else if (format === "pem") send(res, 200, "application/x-pem-file", publicKeyPem(publicKey), keyId);
    else send(res, 400, "application/json", JSON.stringify({ code: "invalid_argument", message: "format: must be pem or jwk" }));
    return true;
  };
}
