-- Data lifecycle (docs/ARCHITECTURE.md, "Data lifecycle"): retention
-- policies, what the retention job has done, the archives it wrote, the
-- chain anchor that lets VerifyChain start after removed events, and erasure.
--
-- Row-level security as on every tenant table (0004, 0007, 0010): the tenant
-- set for the transaction sees its own rows (auditlog_reader reads them), the
-- owner works across tenants in system scope (the retention job).

-- One policy per tenant. 0 days means "forever". searchable_days: how long
-- events stay in Elasticsearch (by received_at); keep_days: how long they
-- stay in PostgreSQL before being archived to object storage and deleted.
CREATE TABLE retention_policies (
  tenant_id       text PRIMARY KEY REFERENCES tenants (id),
  searchable_days integer NOT NULL CHECK (searchable_days >= 0),
  keep_days       integer NOT NULL CHECK (keep_days >= 0),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CHECK (keep_days = 0 OR searchable_days = 0 OR searchable_days <= keep_days)
);

-- Per tenant: the received_at before which Elasticsearch holds nothing
-- (the reconciler compares only from there on, so it never re-indexes what
-- retention removed), and the chain anchor: the sequence and hash of the
-- last event removed from PostgreSQL. The next event's prev_hash must equal
-- anchor_hash; VerifyChain starts there.
CREATE TABLE retention_state (
  tenant_id       text PRIMARY KEY REFERENCES tenants (id),
  searchable_from timestamptz,
  anchor_sequence bigint NOT NULL DEFAULT 0,
  anchor_hash     text NOT NULL DEFAULT '',
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per archive object: a contiguous sequence range of one tenant.
-- state: 'archived' (object written and checked, rows still in PostgreSQL)
-- then 'deleted' (rows gone from PostgreSQL and Elasticsearch). A run killed
-- in between finds 'archived' and finishes the deletion; one killed before
-- the row was written writes the object again (same key).
CREATE TABLE archives (
  tenant_id       text NOT NULL REFERENCES tenants (id),
  first_sequence  bigint NOT NULL,
  last_sequence   bigint NOT NULL,
  event_count     bigint NOT NULL,
  first_received  timestamptz NOT NULL,
  last_received   timestamptz NOT NULL,
  first_prev_hash text NOT NULL,
  last_hash       text NOT NULL,
  object_key      text NOT NULL,
  sha256          text NOT NULL,
  state           text NOT NULL CHECK (state IN ('archived', 'deleted')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  rewritten_at    timestamptz,
  PRIMARY KEY (tenant_id, first_sequence)
);

-- Erasure (EraseSubject): an erased event keeps its sequence, times, ids and
-- hashes, loses its personal content, and is verified against its stored
-- content_hash (docs/HASH_CHAIN.md, "Erased events").
ALTER TABLE events ADD COLUMN erased_at timestamptz;

-- What was erased, for the record (the subject only as a salted hash).
CREATE TABLE erasures (
  tenant_id    text NOT NULL REFERENCES tenants (id),
  id           text NOT NULL,
  subject_hash text NOT NULL,
  field        text NOT NULL,
  events       bigint NOT NULL,
  archives     bigint NOT NULL,
  erased_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

ALTER TABLE retention_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE archives ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasures ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON retention_policies
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON retention_state
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON archives
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON erasures
  USING (tenant_id = current_setting('auditlog.tenant_id', true));

CREATE POLICY system_scope ON retention_policies TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON retention_state TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON archives TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON erasures TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');

ALTER TABLE retention_policies FORCE ROW LEVEL SECURITY;
ALTER TABLE retention_state FORCE ROW LEVEL SECURITY;
ALTER TABLE archives FORCE ROW LEVEL SECURITY;
ALTER TABLE erasures FORCE ROW LEVEL SECURITY;

GRANT SELECT ON retention_policies, retention_state, archives, erasures TO auditlog_reader;
