// Archive bucket and retention job settings (docs/ARCHITECTURE.md, "Data
// lifecycle"), read by loadConfig (config.ts). Every bad value is reported
// by variable name. Credentials are the SDK's (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE ...), never ours.
type Env = Record<string, string | undefined>;

export type ArchiveSettings = {
  /** http(s)://host:port of an S3-compatible server; "" for AWS S3 itself. */
  endpoint: string;
  bucket: string;
  region: string;
  /** Prefix of every object key ("" or ending in "/"). */
  prefix: string;
};

/** Null when AUDITLOG_ARCHIVE_S3_BUCKET is unset: no archive, so retention never deletes events. */
export function archiveConfig(env: Env, errors: string[]): ArchiveSettings | null {
  const bucket = env.AUDITLOG_ARCHIVE_S3_BUCKET || "";
  const endpoint = env.AUDITLOG_ARCHIVE_S3_ENDPOINT || "";
  let prefix = env.AUDITLOG_ARCHIVE_S3_PREFIX ?? "";
  if (!bucket) {
    if (endpoint) errors.push("AUDITLOG_ARCHIVE_S3_BUCKET: required when AUDITLOG_ARCHIVE_S3_ENDPOINT is set");
    return null;
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    errors.push("AUDITLOG_ARCHIVE_S3_BUCKET: 3 to 63 lowercase letters, digits, '.' and '-'");
  }
  if (endpoint && !/^https?:\/\/[^/]+\/?$/.test(endpoint)) {
    errors.push("AUDITLOG_ARCHIVE_S3_ENDPOINT: must be http(s)://host[:port]");
  }
  if (prefix && !prefix.endsWith("/")) prefix += "/";
  return { endpoint: endpoint.replace(/\/$/, ""), bucket, region: env.AUDITLOG_ARCHIVE_S3_REGION || env.AWS_REGION || "us-east-1", prefix };
}
