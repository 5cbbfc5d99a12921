// The in-app query syntax help: a short form of docs/QUERY_SYNTAX.md (the
// full reference). test/unit/console-query-help.test.ts checks that every
// field the parser knows (src/domain/query-string.ts) is listed here.
export const HELP_FIELDS: [field: string, value: string][] = [
  ["id", "event id, exact"],
  ["action", "exact, or a prefix ending in .* (action:customer.*)"],
  ["actor.id, actor.name, actor.ip, actor.session_id", "exact"],
  ["actor.type", "USER, SERVICE, SYSTEM, UNSPECIFIED"],
  ["target.type, target.id, target.name", "exact; events without a target never match"],
  ["outcome", "SUCCESS, FAILURE, DENIED, UNKNOWN"],
  ["severity", "INFO, WARNING, ERROR, CRITICAL; also >=, >, <=, <"],
  ["context.request_id (request_id)", "exact"],
  ["context.trace_id (trace_id)", "exact"],
  ["context.source (source)", "exact"],
  ["context.location (location)", "exact"],
  ["occurred_at", "only with >=, >, <=, < and an RFC 3339 time or a date (2026-01-01 = midnight UTC)"],
  ["metadata.<key>", "the value at a dotted key path; metadata.<key>:* when present"],
];

export const HELP_EXAMPLES: [query: string, means: string][] = [
  ["actor.id:u1 actor.id:u2", "actor.id is u1 or u2 (repeated field terms OR-combine)"],
  ["actor.id:u1 outcome:denied", "actor.id is u1 and the outcome is DENIED"],
  ["severity>=WARNING severity<CRITICAL", "WARNING or ERROR"],
  ["occurred_at>=2026-01-01 occurred_at<2026-02-01", "January 2026"],
  ['actor.name:"Ada Lovelace"', 'quotes for spaces; \\" and \\\\ inside quotes'],
  ['"card declined" -test', "the phrase in the message, metadata or changes, and not the word test"],
];

export const HELP_NOTES = [
  "Terms are separated by spaces and must all hold (AND); repeated field:value terms for the same field OR-combine.",
  "There is no OR between different fields, no parentheses, no NOT for field terms.",
  "Field names are case-insensitive; values are exact and case-sensitive, except enum values.",
  "An unquoted * is only valid in action:<prefix>.* and metadata.<key>:*.",
  'Free text: a word or a "quoted phrase" matches the message or a string inside metadata or changes; -word excludes.',
  "A syntax error names its position: the console marks that character in your query.",
];
