-- Row-level security for the table owner too.
--
-- 0001 enabled RLS on events, event_ids and chain_heads, but PostgreSQL does
-- not apply policies to a table's owner unless the table FORCEs them, and the
-- service's own login role owns these tables. So any statement that ran as
-- that role (a read that skipped SET ROLE auditlog_reader, a future read pool
-- logging in as the owner) saw every tenant, even with auditlog.tenant_id
-- set. With FORCE, the owner is held to the same tenant policy.
--
-- The owner's cross-tenant work (the writer's batches, tenant creation, the
-- indexer and reconciler walking all tenants) gets a policy of its own,
-- `system_scope`, that is deliberately narrow:
--   * only for the role that owns the tables (TO CURRENT_USER, resolved now,
--     at migration time); auditlog_reader, which tenant-facing reads switch
--     to, can never use it;
--   * only when the transaction says so explicitly: auditlog.scope =
--     'system', set transaction-locally by src/store/system-scope.ts. Having
--     no tenant set is NOT enough: a session that set neither sees nothing
--     (fails closed), instead of quietly seeing every tenant;
--   * never together with a tenant: a transaction that set auditlog.tenant_id
--     sees only that tenant, even if it also claimed system scope.
--
-- Superusers and roles with BYPASSRLS skip row-level security whatever the
-- table says; run the service as an ordinary role for this to mean anything.
-- Such an owner must also be a member of auditlog_reader (GRANT
-- auditlog_reader TO <owner>), which SET ROLE needs.
ALTER TABLE events FORCE ROW LEVEL SECURITY;
ALTER TABLE event_ids FORCE ROW LEVEL SECURITY;
ALTER TABLE chain_heads FORCE ROW LEVEL SECURITY;

CREATE POLICY system_scope ON events TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON event_ids TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON chain_heads TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
