// The index template: monthly indices by received_at behind one alias and
// explicit mappings. Free text uses the built-in standard analyzer (UAX #29
// words, lowercased), which the domain's `words()` reproduces, and which
// every Elasticsearch distribution has (the minimal test distribution lacks
// the analysis-common module, so no custom tokenizers).
export const INDEX_PREFIX = "auditlog-events-";
export const READ_ALIAS = "auditlog-events";
export const TEMPLATE_NAME = "auditlog-events";

/**
 * Between the prefix and the month. The first layout named indices
 * `auditlog-events-YYYY.MM` by occurred_at; the infix keeps the two schemes
 * from ever naming the same index, so an upgrade cannot mix them in one
 * index, and `npm run reindex` (which drops every `auditlog-events-*`)
 * replaces the old ones.
 */
export const RECEIVED_MONTH_INFIX = "received-";

/** The monthly index an event belongs to, by its received_at (RFC 3339 text). */
export function indexNameFor(receivedAt: string): string {
  return `${INDEX_PREFIX}${RECEIVED_MONTH_INFIX}${receivedAt.slice(0, 4)}.${receivedAt.slice(5, 7)}`;
}

const keyword = { type: "keyword" } as const;

export const indexTemplate = {
  index_patterns: [`${INDEX_PREFIX}*`],
  template: {
    aliases: { [READ_ALIAS]: {} },
    settings: {
      number_of_shards: 1,
      number_of_replicas: 0,
      refresh_interval: "500ms",
    },
    mappings: {
      dynamic: "strict",
      _routing: { required: true },
      properties: {
        tenant_id: keyword,
        id: keyword,
        sequence: { type: "long" },
        occurred_at: { type: "date_nanos" },
        received_at: { type: "date_nanos" },
        action: keyword,
        actor: {
          properties: {
            id: keyword,
            type: keyword,
            name: keyword,
            ip: keyword,
            user_agent: keyword,
            session_id: keyword,
          },
        },
        target: { properties: { type: keyword, id: keyword, name: keyword } },
        outcome: keyword,
        severity: keyword,
        context: { properties: { request_id: keyword, trace_id: keyword, source: keyword, location: keyword } },
        // Open content: every leaf is searchable by its dotted key without
        // adding a mapping per key (no mapping explosion).
        metadata: { type: "flattened", depth_limit: 20, ignore_above: 1024 },
        changes: {
          properties: {
            before: { type: "flattened", depth_limit: 20, ignore_above: 1024 },
            after: { type: "flattened", depth_limit: 20, ignore_above: 1024 },
          },
        },
        message: { type: "text", analyzer: "standard", fields: { raw: { type: "keyword", ignore_above: 1024 } } },
        open_text: { type: "text", analyzer: "standard", position_increment_gap: 100 },
        content_hash: { type: "keyword", index: false },
        hash: { type: "keyword", index: false },
        prev_hash: { type: "keyword", index: false },
        id_hash: { type: "long" },
        // For verifying what search and exports return: the content hash's
        // salt, and whether an erasure kept only the content hash.
        salt: { type: "keyword", index: false },
        erased: { type: "boolean", index: false },
      },
    },
  },
} as const;
