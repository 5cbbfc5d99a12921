-- Data protection (docs/ARCHITECTURE.md, "Data protection"): per-tenant
-- masking rules, and the tenants' data keys for encryption at rest.
--
-- masking_rules: one row per tenant that chose its rules (SetMaskingRules);
-- a tenant without a row gets the default rule set (src/domain/masking.ts).
--
-- data_keys: each tenant's AES-256 data keys, never in clear: `wrapped` is
-- the key encrypted (AES-256-GCM) under the key-encryption key `kek_id` from
-- the configuration. Every encrypted value names its data key (`key_id`), so
-- old rows stay readable after a rotation: new writes use the newest key
-- (the one with the highest created_at and no retired_at), older keys stay
-- for decryption. Deleting a tenant deletes its keys (every tenant_id table).
CREATE TABLE masking_rules (
  tenant_id text PRIMARY KEY REFERENCES tenants (id),
  rules jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE data_keys (
  tenant_id text NOT NULL REFERENCES tenants (id),
  key_id text NOT NULL,
  kek_id text NOT NULL,
  wrapped bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  retired_at timestamptz,
  PRIMARY KEY (tenant_id, key_id)
);

ALTER TABLE masking_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE masking_rules FORCE ROW LEVEL SECURITY;
ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON masking_rules
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON data_keys
  USING (tenant_id = current_setting('auditlog.tenant_id', true));

CREATE POLICY system_scope ON masking_rules TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON data_keys TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
