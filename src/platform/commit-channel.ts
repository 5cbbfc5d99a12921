// The PostgreSQL notification channel the writer signals after each commit
// and the indexer listens on. It lives here so that neither side has to
// import the other to agree on it.
export const COMMIT_CHANNEL = "auditlog_commits";
