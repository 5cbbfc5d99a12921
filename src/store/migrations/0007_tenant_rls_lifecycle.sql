-- Row-level security on every table that holds a tenant's rows, and the
-- tenant lifecycle (update, suspend, delete after confirmation).
--
-- 0001..0004 isolated events, event_ids and chain_heads (forced, with the
-- owner's explicit `system_scope`), and index_failures (not forced). The
-- other tables with a tenant's rows (tenants itself, api_keys,
-- index_progress, reconcile_reports) had no policy at all, so a statement
-- that forgot its tenant condition saw every tenant there. Now each of them
-- has the same two policies as events, and all are forced:
--   * tenant_isolation: the tenant set for the transaction
--     (auditlog.tenant_id) sees its own rows, nobody else's;
--   * system_scope: the owning role, in a transaction that declared
--     auditlog.scope = 'system' and no tenant (src/store/system-scope.ts),
--     for work that spans tenants by design (tenant and key administration,
--     indexer, reconciler, tenant deletion).
--
-- Authentication must find a key by its id before anyone knows the tenant.
-- It gets a path of its own, narrower than system scope: two SECURITY
-- DEFINER functions that read one key, or one tenant's state, by id. Each
-- sets auditlog.scope = 'auth_lookup' for its own duration only (and puts
-- the previous value back before it returns), and the `auth_lookup`
-- policies let that scope SELECT, nothing else, on api_keys and tenants.
-- EXECUTE is revoked from PUBLIC: only the owner (the service) calls them.

-- Lifecycle columns. settings: free-form JSON object chosen by the operator
-- (UpdateTenant). suspended_at: ingest and reads refused while set
-- (src/auth/authenticate.ts). deletion_*: the pending two-step deletion
-- (RequestTenantDeletion stores the hash of a confirmation token and its
-- expiry; DeleteTenant must present the token before then).
ALTER TABLE tenants
  ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'::jsonb,
  ADD COLUMN updated_at timestamptz,
  ADD COLUMN suspended_at timestamptz,
  ADD COLUMN deletion_token_hash bytea,
  ADD COLUMN deletion_expires_at timestamptz;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE index_progress ENABLE ROW LEVEL SECURITY;
ALTER TABLE reconcile_reports ENABLE ROW LEVEL SECURITY;
-- index_failures: enabled and given tenant_isolation by 0003.

CREATE POLICY tenant_isolation ON tenants
  USING (id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON api_keys
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON index_progress
  USING (tenant_id = current_setting('auditlog.tenant_id', true));
CREATE POLICY tenant_isolation ON reconcile_reports
  USING (tenant_id = current_setting('auditlog.tenant_id', true));

CREATE POLICY system_scope ON tenants TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON api_keys TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON index_progress TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON reconcile_reports TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY system_scope ON index_failures TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '')
  WITH CHECK (current_setting('auditlog.scope', true) = 'system' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');

CREATE POLICY auth_lookup ON tenants FOR SELECT TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'auth_lookup' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');
CREATE POLICY auth_lookup ON api_keys FOR SELECT TO CURRENT_USER
  USING (current_setting('auditlog.scope', true) = 'auth_lookup' AND coalesce(current_setting('auditlog.tenant_id', true), '') = '');

ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE index_progress FORCE ROW LEVEL SECURITY;
ALTER TABLE reconcile_reports FORCE ROW LEVEL SECURITY;
ALTER TABLE index_failures FORCE ROW LEVEL SECURITY;

-- One API key by id, for authentication (src/store/api-key-store.ts).
-- PL/pgSQL setting the scope transaction-locally and putting back what was
-- there before it returns: a function's SET clause would be neater, but an
-- ordinary role may not attach a custom setting to a function. If the query
-- fails, the transaction (or its savepoint) is aborted, which undoes the
-- settings too.
CREATE FUNCTION auditlog_key_for_authentication(key_id text)
RETURNS TABLE (
  id text, tenant_id text, name text, scopes text[], secret_hash bytea,
  created_at timestamptz, rotated_at timestamptz, revoked_at timestamptz, expires_at timestamptz
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  prev_scope text := coalesce(current_setting('auditlog.scope', true), '');
  prev_tenant text := coalesce(current_setting('auditlog.tenant_id', true), '');
BEGIN
  PERFORM set_config('auditlog.scope', 'auth_lookup', true), set_config('auditlog.tenant_id', '', true);
  RETURN QUERY
    SELECT k.id, k.tenant_id, k.name, k.scopes, k.secret_hash, k.created_at, k.rotated_at, k.revoked_at, k.expires_at
      FROM api_keys k WHERE k.id = key_id;
  PERFORM set_config('auditlog.scope', prev_scope, true), set_config('auditlog.tenant_id', prev_tenant, true);
END
$$;

-- One tenant's state, for the suspension check (src/store/tenant-store.ts).
CREATE FUNCTION auditlog_tenant_state(tenant text)
RETURNS TABLE (id text, suspended_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
  prev_scope text := coalesce(current_setting('auditlog.scope', true), '');
  prev_tenant text := coalesce(current_setting('auditlog.tenant_id', true), '');
BEGIN
  PERFORM set_config('auditlog.scope', 'auth_lookup', true), set_config('auditlog.tenant_id', '', true);
  RETURN QUERY SELECT t.id, t.suspended_at FROM tenants t WHERE t.id = tenant;
  PERFORM set_config('auditlog.scope', prev_scope, true), set_config('auditlog.tenant_id', prev_tenant, true);
END
$$;

REVOKE ALL ON FUNCTION auditlog_key_for_authentication(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auditlog_tenant_state(text) FROM PUBLIC;
