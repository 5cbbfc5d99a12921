-- Tenants and their API keys. Read by the service itself to authenticate
-- callers across tenants, so no row-level security here.
CREATE TABLE tenants (
  id         text PRIMARY KEY,
  name       text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id          text PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants (id),
  name        text NOT NULL DEFAULT '',
  scopes      text[] NOT NULL,
  secret_hash bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  rotated_at  timestamptz,
  revoked_at  timestamptz,
  expires_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

-- The head of each tenant's hash chain. Writers lock this row, so sequences
-- are assigned in commit order without gaps.
CREATE TABLE chain_heads (
  tenant_id text PRIMARY KEY REFERENCES tenants (id),
  sequence  bigint NOT NULL,
  hash      text NOT NULL
);

-- Idempotency keys, never expired. Kept apart from the partitioned events
-- table because a unique index on a partitioned table must contain the
-- partition key, and (tenant, id) must be unique across all time.
CREATE TABLE event_ids (
  tenant_id    text NOT NULL,
  event_id     text NOT NULL,
  content_hash text NOT NULL,
  sequence     bigint NOT NULL,
  received_at  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, event_id)
);

-- Events, range-partitioned by the server's receive time: partitions are
-- created ahead of need and retention drops whole partitions.
CREATE TABLE events (
  tenant_id        text NOT NULL,
  sequence         bigint NOT NULL,
  id               text NOT NULL,
  occurred_at      timestamptz NOT NULL,
  received_at      timestamptz NOT NULL,
  action           text NOT NULL,
  actor_id         text NOT NULL,
  actor_type       text NOT NULL,
  actor_name       text NOT NULL,
  actor_ip         text NOT NULL,
  actor_user_agent text NOT NULL,
  actor_session_id text NOT NULL,
  target_type      text,
  target_id        text,
  target_name      text,
  outcome          text NOT NULL CHECK (outcome IN ('SUCCESS', 'FAILURE', 'DENIED', 'UNKNOWN')),
  severity         text NOT NULL CHECK (severity IN ('INFO', 'WARNING', 'ERROR', 'CRITICAL')),
  request_id       text NOT NULL,
  trace_id         text NOT NULL,
  source           text NOT NULL,
  location         text NOT NULL,
  changes          jsonb,
  metadata         jsonb,
  message          text NOT NULL,
  content_hash     text NOT NULL,
  hash             text NOT NULL,
  prev_hash        text NOT NULL,
  PRIMARY KEY (tenant_id, sequence, received_at)
) PARTITION BY RANGE (received_at);

CREATE INDEX events_tenant_occurred ON events (tenant_id, occurred_at, sequence);
CREATE INDEX events_received_brin ON events USING brin (received_at);

-- Rows whose receive time falls outside every monthly partition land here
-- rather than failing the insert; maintenance reports them.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Row-level security: tenant-facing reads run as auditlog_reader with
-- auditlog.tenant_id set for the transaction; the policy is the last line of
-- defence if a query were ever built without its tenant condition.
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_ids ENABLE ROW LEVEL SECURITY;
ALTER TABLE chain_heads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON event_ids
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON chain_heads
  USING (tenant_id = current_setting('auditlog.tenant_id', true));

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auditlog_reader') THEN
    CREATE ROLE auditlog_reader NOLOGIN;
  END IF;
END
$$;
GRANT SELECT ON events, event_ids, chain_heads TO auditlog_reader;
