-- Search from PostgreSQL (the backend without Elasticsearch) walks
-- events_tenant_occurred (0001) in page order and stops after one page; it
-- relies on the planner's estimates to choose that plan over "read every
-- match, then sort" (see also src/store/partition-statistics.ts and
-- docs/PERFORMANCE.md, "Round two").
--
-- The actor policy of 0006, with the same meaning, written so that the
-- planner can estimate it. As `coalesce(setting, '') = '' OR actor_id =
-- setting` it was estimated to keep under 1 % of the rows (0.5 % for the
-- first arm, 1/distinct actors for the second) on every read, so every
-- search looked tiny to the planner, which then chose to sort the tenant's
-- matching events rather than walk an index in page order. A CASE is
-- estimated at one half, which keeps the page-order plans.
--
-- No index is added for the filters: an index on (tenant_id, action,
-- occurred_at, sequence) made a page of a rare action 20 times faster
-- (1.8 ms instead of 34 ms at 105,000 events) but every insert into
-- `events` 1.5 to 2 times slower, beyond the ingest budget. GIN indexes for
-- free text and metadata cannot serve reads under row-level security (their
-- operators are not leakproof).
ALTER POLICY actor_isolation ON events
  USING (
    CASE WHEN coalesce(current_setting('auditlog.actor_id', true), '') = '' THEN true
         ELSE actor_id = current_setting('auditlog.actor_id', true) END
  );
