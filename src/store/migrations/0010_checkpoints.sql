-- Signed checkpoints (docs/HASH_CHAIN.md, "Signed checkpoints"): a tenant's
-- chain head (sequence, hash) at a time, signed with the service's Ed25519
-- key. Kept forever alongside the chain they vouch for. One row per head and
-- key: signing the same head twice with the same key keeps the first.
--
-- Row-level security as on every tenant table (0004, 0007): the tenant set
-- for the transaction sees its own rows (auditlog_reader reads them), and
-- the owner writes them in system scope (the periodic job spans tenants) or
-- with the tenant set (CreateCheckpoint).
CREATE TABLE checkpoints (
  tenant_id  text NOT NULL REFERENCES tenants (id),
  sequence   bigint NOT NULL,
  hash       text NOT NULL,
  created_at timestamptz NOT NULL,
  key_id     text NOT NULL,
  signature  text NOT NULL,
  PRIMARY KEY (tenant_id, sequence, key_id)
);

ALTER TABLE checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON checkpoints
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY system_scope ON checkpoints TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
ALTER TABLE checkpoints FORCE ROW LEVEL SECURITY;
GRANT SELECT ON checkpoints TO auditlog_reader;
