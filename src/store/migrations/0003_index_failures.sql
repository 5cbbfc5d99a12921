-- Events Elasticsearch refused for their own content (index_failures.ts):
-- the indexer records them here and moves the tenant's progress past them,
-- so one unindexable event cannot freeze its tenant's search. They stay in
-- `events` and the hash chain; only search, export and stats miss them.
-- GetIndexStatus lists them; the reconciler does not count them as missing.
CREATE TABLE index_failures (
  tenant_id text NOT NULL REFERENCES tenants (id),
  sequence  bigint NOT NULL,
  event_id  text NOT NULL,
  reason    text NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sequence)
);
-- Health counts recent refusals across tenants.
CREATE INDEX index_failures_recent ON index_failures (failed_at);

-- Same isolation as the other tenant tables (0001_initial.sql).
ALTER TABLE index_failures ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON index_failures
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
GRANT SELECT ON index_failures TO auditlog_reader;
