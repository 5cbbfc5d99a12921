-- Indexes for search from PostgreSQL (the backend without Elasticsearch).
-- Pages are read newest (or oldest) first by (occurred_at, sequence), so
-- the index leads with the tenant, then the action, then the order:
-- PostgreSQL walks one action's events in page order through every monthly
-- partition (a Merge Append of per-partition index scans) and stops after
-- one page, instead of filtering the whole tenant. The action is the most
-- common filter, alone and with a time range.
--
-- One index only: each one costs every ingested row its insert (measured in
-- docs/PERFORMANCE.md, "Round two"); an index on (tenant_id, actor_id, ...)
-- for a User's own activity cost too much ingest for this round.
--
-- Free text and metadata use events_tenant_occurred (0001) and the table's
-- statistics (see src/store/partition-statistics.ts): GIN indexes cannot
-- serve reads under row-level security, because their operators are not
-- leakproof (docs/PERFORMANCE.md, "Round two").
CREATE INDEX events_tenant_action_occurred ON events (tenant_id, action, occurred_at, sequence);

-- The actor policy of 0006, with the same meaning, written so that the
-- planner can estimate it. As `coalesce(setting, '') = '' OR actor_id =
-- setting` it was estimated to keep under 1 % of the rows (0.5 % for the
-- first arm, 1/distinct actors for the second) on every read, so every
-- search looked tiny to the planner, which then chose to sort the tenant's
-- matching events rather than walk an index in page order. A CASE is
-- estimated at one half, which keeps the page-order plans.
ALTER POLICY actor_isolation ON events
  USING (
    CASE WHEN coalesce(current_setting('auditlog.actor_id', true), '') = '' THEN true
         ELSE actor_id = current_setting('auditlog.actor_id', true) END
  );
