// TLS and encryption-at-rest settings (docs/ARCHITECTURE.md, "Data
// protection"), read by loadConfig (config.ts). Every bad value is reported
// by variable name; key material is never part of a message.
type Env = Record<string, string | undefined>;

export type TlsSettings = {
  /** PEM certificate chain (the server's certificate first). */
  certFile: string;
  /** PEM private key of that certificate. */
  keyFile: string;
};

/** A key-encryption key: wraps the tenants' data keys, never data itself. */
export type Kek = { id: string; key: Buffer };

export type KekSettings = {
  /** Wraps new data keys. */
  current: Kek;
  /** Earlier KEKs, kept to unwrap the data keys they wrapped (AUDITLOG_KEK_RETIRED). */
  retired: Kek[];
};

const KEK_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

export function tlsConfig(env: Env, errors: string[]): TlsSettings | null {
  const certFile = env.AUDITLOG_TLS_CERT_FILE || null;
  const keyFile = env.AUDITLOG_TLS_KEY_FILE || null;
  if (certFile === null && keyFile === null) return null;
  if (certFile === null || keyFile === null) {
    errors.push("AUDITLOG_TLS_CERT_FILE and AUDITLOG_TLS_KEY_FILE: set both (TLS) or neither (cleartext)");
    return null;
  }
  return { certFile, keyFile };
}

/** 32 bytes in standard or URL-safe base64, else null. */
function kekBytes(text: string): Buffer | null {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) return null;
  const key = Buffer.from(t.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  return key.length === 32 ? key : null;
}

/**
 * AUDITLOG_KEK (base64 of 32 random bytes) with AUDITLOG_KEK_ID (default
 * "kek-1"); AUDITLOG_KEK_RETIRED lists earlier ones as `id:base64,...`.
 * Null without AUDITLOG_KEK: encryption at rest is off (serve.ts warns, or
 * makes one in the data directory for the embedded setup).
 */
export function kekConfig(env: Env, errors: string[]): KekSettings | null {
  const raw = env.AUDITLOG_KEK || null;
  const id = env.AUDITLOG_KEK_ID || "kek-1";
  if (!KEK_ID_RE.test(id)) errors.push("AUDITLOG_KEK_ID: 1 to 64 letters, digits, '.', '_' or '-'");
  const retired: Kek[] = [];
  for (const entry of (env.AUDITLOG_KEK_RETIRED ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const colon = entry.indexOf(":");
    const rid = colon > 0 ? entry.slice(0, colon) : "";
    const key = colon > 0 ? kekBytes(entry.slice(colon + 1)) : null;
    if (!KEK_ID_RE.test(rid) || key === null) {
      errors.push(`AUDITLOG_KEK_RETIRED: entry ${retired.length + 1} must be <id>:<base64 of 32 bytes>`);
      continue;
    }
    if (rid === id) errors.push(`AUDITLOG_KEK_RETIRED: id ${JSON.stringify(rid)} is the current AUDITLOG_KEK_ID`);
    retired.push({ id: rid, key });
  }
  if (raw === null) {
    if (retired.length > 0) errors.push("AUDITLOG_KEK_RETIRED: needs AUDITLOG_KEK (the current key)");
    return null;
  }
  const key = kekBytes(raw);
  if (key === null) {
    errors.push("AUDITLOG_KEK: must be base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)");
    return null;
  }
  return { current: { id, key }, retired };
}
