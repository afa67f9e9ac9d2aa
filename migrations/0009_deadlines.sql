-- Deadlines, deferrals and forced remediation (issue #15, docs/architecture.md §9.2).

-- A change's classification (patching.classification) and the deadline it
-- gives (patching.deadline); null deadline: the classification's default,
-- computed when asked (internal/deadline), so a changed setting applies to
-- every change.
ALTER TABLE changes
    ADD COLUMN classification text NOT NULL DEFAULT 'normal'
        CHECK (classification IN ('normal', 'critical', 'emergency')),
    ADD COLUMN deadline timestamptz;

-- The deferral webhook may now be recorded beside the others.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_kind_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_kind_check
    CHECK (kind IN ('change', 'schedule_request', 'deferral'));

-- Every approved deferral of a device in a change, as ServiceNow sent it
-- (POST /webhooks/servicenow/deferral); a device's deferral in force is its
-- latest. forced_at is set when the deferral arrived after the device had
-- been forced: recorded for the audit, answered 409, moving nothing.
CREATE TABLE deferrals (
    event          uuid NOT NULL REFERENCES webhook_events (id),
    change_number  text NOT NULL REFERENCES changes (number),
    device_name    text NOT NULL,
    until          timestamptz NOT NULL,
    reason         text NOT NULL,
    approved_by    text NOT NULL,
    ritm_number    text NOT NULL,
    ritm_sys_id    text NOT NULL,
    forced_at      timestamptz,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event, device_name)
);
CREATE INDEX deferrals_device ON deferrals (change_number, lower(device_name), recorded_at);

-- Each device's deadline beside its last outcome (a deferral moves it), so
-- that autopatch_devices_past_deadline{cycle} counts, at scrape time, the
-- devices whose deadline has passed and that are neither patched nor
-- deferred.
ALTER TABLE compliance_outcomes ADD COLUMN deadline timestamptz;
