// Opaque page tokens: the sort position of the last event served plus a
// fingerprint of the query it belongs to. The tenant is never taken from a
// token (it always comes from the credential), so a token cannot reach
// another tenant; the fingerprint makes a token used with another query or
// another tenant fail loudly instead of returning a wrong page.
import { createHash } from "node:crypto";

export type PagePosition = { occurredAt: bigint; sequence: bigint };

export class PageTokenError extends Error {}

export function queryFingerprint(tenantId: string, query: unknown): string {
  const text = JSON.stringify(query, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  return createHash("sha256").update(`${tenantId}\n${text}`).digest("base64url").slice(0, 16);
}

export function encodePageToken(fingerprint: string, p: PagePosition): string {
  return Buffer.from(`1|${fingerprint}|${p.occurredAt}|${p.sequence}`).toString("base64url");
}

export function decodePageToken(token: string, fingerprint: string): PagePosition {
  const parts = Buffer.from(token, "base64url").toString("utf8").split("|");
  if (parts.length !== 4 || parts[0] !== "1" || !/^-?\d+$/.test(parts[2]!) || !/^\d+$/.test(parts[3]!)) {
    throw new PageTokenError("page_token is malformed");
  }
  if (parts[1] !== fingerprint) {
    throw new PageTokenError("page_token belongs to a different query; send the same filter and order as the first page");
  }
  return { occurredAt: BigInt(parts[2]!), sequence: BigInt(parts[3]!) };
}
