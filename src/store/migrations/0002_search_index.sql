-- Progress of the search indexer: per tenant, the highest sequence that is
-- searchable in Elasticsearch. Sequences are gap-free and assigned in commit
-- order, so "everything up to indexed_sequence" is a complete statement.
CREATE TABLE index_progress (
  tenant_id        text PRIMARY KEY REFERENCES tenants (id),
  indexed_sequence bigint NOT NULL DEFAULT 0,
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Results of the reconciler's consistency checks (PostgreSQL vs index).
CREATE TABLE reconcile_reports (
  id                bigserial PRIMARY KEY,
  tenant_id         text NOT NULL REFERENCES tenants (id),
  finished_at       timestamptz NOT NULL DEFAULT now(),
  windows_checked   bigint NOT NULL,
  windows_with_gaps bigint NOT NULL,
  events_repaired   bigint NOT NULL,
  documents_removed bigint NOT NULL,
  details           jsonb
);
CREATE INDEX reconcile_reports_tenant ON reconcile_reports (tenant_id, finished_at DESC);
