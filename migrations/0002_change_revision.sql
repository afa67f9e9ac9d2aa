-- changes.revision counts the plans and unwinds the webhooks asked for. A
-- plan_change or unwind_change job reads it with the row and checks, in the
-- transaction that records its result, that it has not moved on; if it has,
-- a newer version of the change arrived while the job ran (River's unique
-- jobs do not enqueue a second job while one runs), so the job runs again.
ALTER TABLE changes ADD COLUMN revision bigint NOT NULL DEFAULT 0;

-- Stale detection reads the newest applied version of a record.
CREATE INDEX webhook_events_applied ON webhook_events (kind, record_sys_id, sys_updated_on DESC)
    WHERE outcome = 'accepted' AND sys_updated_on IS NOT NULL;
