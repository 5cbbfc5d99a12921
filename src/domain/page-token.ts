// Opaque page tokens: the sort position of the last event served plus a
// fingerprint of the query it belongs to. The tenant is never taken from a
// token (it always comes from the credential), so a token cannot reach
// another tenant; the fingerprint makes a token used with another query or
// another tenant fail loudly instead of returning a wrong page.
import { createHash } from "node:crypto";
import { OCCURRED_AT_MAX_MICROS, OCCURRED_AT_MIN_MICROS } from "./timestamp.ts";

export type PagePosition = { occurredAt: bigint; sequence: bigint };

export class PageTokenError extends Error {}

// A token is client input: its numbers are bounded to what a served
// position can be (an event's occurred_at window, a bigint sequence), so a
// forged one is refused here instead of failing in a backend.
const MAX_SEQUENCE = 2n ** 63n - 1n;

export function queryFingerprint(tenantId: string, query: unknown): string {
  const text = JSON.stringify(query, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  return createHash("sha256").update(`${tenantId}\n${text}`).digest("base64url").slice(0, 16);
}

export function encodePageToken(fingerprint: string, p: PagePosition): string {
  return Buffer.from(`1|${fingerprint}|${p.occurredAt}|${p.sequence}`).toString("base64url");
}

export function decodePageToken(token: string, fingerprint: string): PagePosition {
  const parts = Buffer.from(token, "base64url").toString("utf8").split("|");
  if (parts.length !== 4 || parts[0] !== "1" || !/^-?\d{1,20}$/.test(parts[2]!) || !/^\d{1,20}$/.test(parts[3]!)) {
    throw new PageTokenError("page_token is malformed");
  }
  if (parts[1] !== fingerprint) {
    throw new PageTokenError("page_token belongs to a different query; send the same filter and order as the first page");
  }
  const occurredAt = BigInt(parts[2]!);
  const sequence = BigInt(parts[3]!);
  if (occurredAt < OCCURRED_AT_MIN_MICROS || occurredAt > OCCURRED_AT_MAX_MICROS || sequence < 1n || sequence > MAX_SEQUENCE) {
    throw new PageTokenError("page_token is malformed");
  }
  return { occurredAt, sequence };
}
