// The index template: monthly indices by occurred_at behind one alias,
// explicit mappings, and an analyzer whose notion of a word (a run of
// letters and digits, lowercased) matches the domain's `words()`, so free
// text means the same in every backend.
export const INDEX_PREFIX = "auditlog-events-";
export const READ_ALIAS = "auditlog-events";
export const TEMPLATE_NAME = "auditlog-events";

/** The monthly index an event belongs to, by its occurred_at (RFC 3339 text). */
export function indexNameFor(occurredAt: string): string {
  return `${INDEX_PREFIX}${occurredAt.slice(0, 4)}.${occurredAt.slice(5, 7)}`;
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
      analysis: {
        tokenizer: { words: { type: "pattern", pattern: "[^\\p{L}\\p{N}]+" } },
        analyzer: { words: { type: "custom", tokenizer: "words", filter: ["lowercase"] } },
      },
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
        message: { type: "text", analyzer: "words", fields: { raw: { type: "keyword", ignore_above: 1024 } } },
        open_text: { type: "text", analyzer: "words", position_increment_gap: 100 },
        content_hash: { type: "keyword", index: false },
        hash: { type: "keyword", index: false },
        prev_hash: { type: "keyword", index: false },
        id_hash: { type: "long" },
      },
    },
  },
} as const;
