// The PostgreSQL notification channel the writer signals after each commit
// and the indexer listens on. It lives here so that neither side has to
// import the other to agree on it.
export const COMMIT_CHANNEL = "auditlog_commits";

// The payload names the tenants whose heads moved and their new head
// sequences, as JSON {"<tenant>": "<sequence>"}, so listeners (the live
// tail) read only those tenants. PostgreSQL caps a payload below 8000
// bytes; a commit of more tenants than fit sends an empty payload, which
// means "any tenant may have moved".
const MAX_PAYLOAD_BYTES = 7900;

export function commitPayload(heads: Iterable<readonly [string, bigint]>): string {
  const o: Record<string, string> = {};
  for (const [tenant, sequence] of heads) o[tenant] = sequence.toString();
  const text = JSON.stringify(o);
  return Buffer.byteLength(text) > MAX_PAYLOAD_BYTES ? "" : text;
}

/** The heads a payload names, or null when it names none (any tenant may have moved). */
export function parseCommitPayload(payload: string | undefined): Map<string, bigint> | null {
  if (!payload) return null;
  try {
    const o = JSON.parse(payload) as Record<string, string>;
    return new Map(Object.entries(o).map(([t, s]) => [t, BigInt(s)] as const));
  } catch {
    return null;
  }
}
