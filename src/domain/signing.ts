// Ed25519 signatures over canonical JSON text, for checkpoints and export
// manifests (docs/HASH_CHAIN.md, "Signed checkpoints"). A key is named by its
// key id: "ed25519:" and the first 16 hex digits of the SHA-256 of its public
// key in DER (SubjectPublicKeyInfo), so a verifier can tell which key signed
// without trusting anything but the public key it holds.
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto";

export type SigningKey = { privateKey: KeyObject; publicKey: KeyObject; keyId: string };

export class KeyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyFormatError";
  }
}

export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ format: "der", type: "spki" });
  return `ed25519:${createHash("sha256").update(der).digest("hex").slice(0, 16)}`;
}

function requireEd25519(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== "ed25519") {
    throw new KeyFormatError(`${what} is a ${key.asymmetricKeyType ?? "symmetric"} key, not Ed25519`);
  }
}

/** A private key in PEM (PKCS#8), with its public key and key id. */
export function signingKeyFromPem(pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new KeyFormatError(`not a PEM private key: ${(err as Error).message}`);
  }
  requireEd25519(privateKey, "the private key");
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** A public key in PEM (SPKI), or the public half of a private key's PEM. */
export function publicKeyFromPem(pem: string): KeyObject {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (err) {
    throw new KeyFormatError(`not a PEM public key: ${(err as Error).message}`);
  }
  requireEd25519(publicKey, "the public key");
  return publicKey;
}

export function publicKeyPem(publicKey: KeyObject): string {
  return publicKey.export({ format: "pem", type: "spki" }).toString();
}

/** The public key as a JWK (RFC 8037: kty OKP, crv Ed25519), with the key id as `kid`. */
export function publicKeyJwk(publicKey: KeyObject): { kty: string; crv: string; x: string; kid: string; alg: string; use: string } {
  const jwk = publicKey.export({ format: "jwk" }) as { kty: string; crv: string; x: string };
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid: keyIdOf(publicKey), alg: "EdDSA", use: "sig" };
}

/** Base64 of the Ed25519 signature of the UTF-8 bytes of `text`. */
export function signText(key: SigningKey, text: string): string {
  return sign(null, Buffer.from(text, "utf8"), key.privateKey).toString("base64");
}

export function verifyText(publicKey: KeyObject, text: string, signature: string): boolean {
  const sig = Buffer.from(signature, "base64");
  if (sig.length !== 64) return false;
  return verify(null, Buffer.from(text, "utf8"), publicKey, sig);
}

/** Why `signature` of `payload`, claimed by key `keyId`, is not `publicKey`'s (null: it is); `what` names the document. */
export function signatureProblem(
  publicKey: KeyObject,
  what: string,
  signed: { keyId: string; payload: string; signature: string },
): string | null {
  const keyId = keyIdOf(publicKey);
  if (signed.keyId !== keyId) return `the ${what} was signed by another key (${signed.keyId}; the public key given is ${keyId})`;
  if (!verifyText(publicKey, signed.payload, signed.signature)) return `the ${what}'s signature does not match its content`;
  return null;
}
