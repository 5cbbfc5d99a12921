-- A person with the User role may see only the events where they are the
-- actor (their own activity). Their reads set `auditlog.actor_id` for the
-- transaction (src/store/tenant-scope.ts, withTenantRead's actorId) besides
-- the tenant, and this policy holds every statement to that actor, even one
-- built without its actor condition.
--
-- RESTRICTIVE: it narrows what the permissive policies (tenant_isolation,
-- system_scope) allow instead of adding to it, so it cannot widen anything.
-- For every role (the owner too, since 0004 forces RLS on events). Unset or
-- empty means no actor restriction: Admin, Auditor and API-key reads, the
-- writer, indexer and reconciler. The service never sets an empty actor
-- (tokens without a subject are refused).
CREATE POLICY actor_isolation ON events AS RESTRICTIVE
  USING (
    coalesce(current_setting('auditlog.actor_id', true), '') = ''
    OR actor_id = current_setting('auditlog.actor_id', true)
  );
