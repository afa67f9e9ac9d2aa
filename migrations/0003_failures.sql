-- Status polling and failure reporting (issue #7).

-- A deployment that closed gets one last status read, its final poll:
-- devices that have not reported by then are reported as "no status".
-- NULL while that read is still due. Deployments closed before this
-- migration are taken as done.
ALTER TABLE deployments ADD COLUMN final_polled_at timestamptz;
UPDATE deployments SET final_polled_at = closed_at WHERE state = 'closed';
CREATE INDEX deployments_to_poll ON deployments (id)
    WHERE state = 'open' OR (state = 'closed' AND final_polled_at IS NULL);

-- SCCM's own time of a status (StatusTime), beside observed_at, when
-- autopatch read it. NULL for a device that never reported.
ALTER TABLE device_results ADD COLUMN status_time timestamptz;
ALTER TABLE device_result_history ADD COLUMN status_time timestamptz;
CREATE INDEX device_result_history_deployment ON device_result_history (deployment_id, device_name, id);

-- The progress of a failure's remote steps. The poll that finds a failure
-- writes the row (and the jobs that report it) in one transaction; each
-- step records its result after the remote call, so a retry knows what is
-- done, and the remote look-ups (SCOM by key, ServiceNow by correlation id)
-- cover a crash between a call and its record.
--   SCOM:       alert_outcome/alert_id (raised) → alert_ticket (linked to
--               the incident) → alert_closed_at (device recovered)
--   ServiceNow: incident_number (opened) → incident_noted_at and
--               incident_resolved_at (device recovered)
-- A device failing in a storm (too many failures in one window) is a member
-- of the window's storm failure (storm_id) and has no alert or incident of
-- its own; the storm's incident lists it.
ALTER TABLE failures
    ADD COLUMN storm_id             bigint REFERENCES failures (id),
    ADD COLUMN alert_computer       text NOT NULL DEFAULT '',
    ADD COLUMN alert_outcome        text,
    ADD COLUMN alert_detail         text NOT NULL DEFAULT '',
    ADD COLUMN alert_ticket         text,
    ADD COLUMN alert_closed_at      timestamptz,
    ADD COLUMN incident_created_at  timestamptz,
    ADD COLUMN incident_noted_at    timestamptz,
    ADD COLUMN incident_resolved_at timestamptz,
    ADD COLUMN members_noted        int NOT NULL DEFAULT 0,
    ADD COLUMN recovered_at         timestamptz,
    ADD COLUMN updated_at           timestamptz NOT NULL DEFAULT now();
CREATE INDEX failures_storm ON failures (storm_id) WHERE storm_id IS NOT NULL;
CREATE INDEX failures_deployment ON failures (deployment_id);
-- The sweep looks for open failures whose steps stalled.
CREATE INDEX failures_open ON failures (updated_at) WHERE state = 'open';
