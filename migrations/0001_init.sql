-- autopatch's tables. River's own tables come from rivermigrate.
-- Times are timestamptz (instants); a schedule's wall clock lives in its
-- definition and time zone, never in a column without a zone.

-- Schedules as loaded from the schedules file. A schedule that leaves the file
-- is retired, not deleted: plans, deployments and history still name it.
CREATE TABLE schedules (
    name        text PRIMARY KEY,
    collection  text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('automatic', 'manual_patch', 'manual_reboot')),
    timezone    text NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
-- Two active schedules must not share a collection; a retired one may have
-- handed its collection to a successor.
CREATE UNIQUE INDEX schedules_active_collection ON schedules (lower(collection)) WHERE retired_at IS NULL;

-- Every webhook delivery that passed authentication and validation. The job
-- it produced is inserted in the same transaction.
CREATE TABLE webhook_events (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('change', 'schedule_request')),
    event_id        text,
    record_number   text NOT NULL,
    record_sys_id   text NOT NULL,
    sys_updated_on  timestamptz,
    payload         jsonb NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('accepted', 'stale')),
    received_at     timestamptz NOT NULL DEFAULT now()
);
-- Duplicate detection: the same delivery id, or the same record version.
CREATE UNIQUE INDEX webhook_events_event_id ON webhook_events (kind, event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX webhook_events_version ON webhook_events (kind, record_sys_id, sys_updated_on) WHERE sys_updated_on IS NOT NULL;

-- Devices autopatch has been asked to manage. SCCM names are case-insensitive.
CREATE TABLE devices (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    resource_id     bigint,
    schedule_name   text REFERENCES schedules (name),
    service         text,
    tier            text CHECK (tier IN ('backend', 'middle', 'frontend')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX devices_name ON devices (lower(name));
CREATE INDEX devices_service ON devices (service, tier);

-- What each schedule request did to each device.
CREATE TABLE device_assignments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id       bigint NOT NULL REFERENCES devices (id),
    schedule_name   text NOT NULL REFERENCES schedules (name),
    service         text,
    tier            text,
    request_item    text NOT NULL,
    webhook_event   uuid REFERENCES webhook_events (id),
    outcome         text NOT NULL CHECK (outcome IN ('moved', 'already_there', 'unknown_device', 'refused')),
    detail          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_assignments_device ON device_assignments (device_id, created_at);

-- Changes as last seen from ServiceNow.
CREATE TABLE changes (
    number          text PRIMARY KEY,
    sys_id          text NOT NULL UNIQUE,
    state           text NOT NULL,
    approval        text NOT NULL,
    start_at        timestamptz NOT NULL,
    end_at          timestamptz NOT NULL,
    update_groups   text[] NOT NULL,
    schedules       text[],            -- NULL: every automatic and manual_reboot schedule
    short_description text NOT NULL DEFAULT '',
    sys_updated_on  timestamptz,
    status          text NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'planned', 'canceled')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (end_at > start_at)
);

-- One computed plan per change version; the newest is current.
CREATE TABLE plans (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_number   text NOT NULL REFERENCES changes (number),
    version         int NOT NULL,
    change_start    timestamptz NOT NULL,
    change_end      timestamptz NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (change_number, version)
);
CREATE TABLE plan_entries (
    plan_id         bigint NOT NULL REFERENCES plans (id),
    schedule_name   text NOT NULL REFERENCES schedules (name),
    window_start    timestamptz,
    window_end      timestamptz,
    unplaceable     text,              -- the reason when no window fits
    held            text,              -- the service-safety reason when left out
    PRIMARY KEY (plan_id, schedule_name),
    CHECK ((window_start IS NULL) = (unplaceable IS NOT NULL))
);

-- One SCCM deployment: (change, schedule, update group) in one window. The
-- state column is the guard every job checks and moves under a row lock, so
-- two replicas or a retried job cannot act twice:
--   planned  → created (disabled in SCCM) → open (enabled) → closed (disabled)
--   created  → missed (too little of the window left to open)
--   planned/created → obsolete (dropped by a re-plan or an unwind) → deleted
--   planned  → failed (SCCM refused to create it)
-- close_at is when an open deployment must be disabled: the window's end, or
-- earlier when a cancellation or re-plan asks for it.
CREATE TABLE deployments (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_number    text NOT NULL REFERENCES changes (number),
    schedule_name    text NOT NULL REFERENCES schedules (name),
    update_group     text NOT NULL,
    name             text NOT NULL,
    collection       text NOT NULL,
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    close_at         timestamptz NOT NULL,
    suppress_restart boolean NOT NULL DEFAULT false,
    state            text NOT NULL DEFAULT 'planned'
                     CHECK (state IN ('planned', 'created', 'open', 'closed', 'missed', 'obsolete', 'deleted', 'failed')),
    detail           text NOT NULL DEFAULT '',
    sccm_id          text,
    opened_at        timestamptz,
    closed_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end > window_start)
);
-- A deterministic SCCM name belongs to at most one deployment waiting to be
-- created or opened. (A window moved while open leaves the open row to close
-- while its successor waits under the same name.)
CREATE UNIQUE INDEX deployments_pending_name ON deployments (name) WHERE state IN ('planned', 'created');
CREATE INDEX deployments_change ON deployments (change_number);
CREATE INDEX deployments_due_open ON deployments (window_start) WHERE state = 'created';
CREATE INDEX deployments_due_close ON deployments (close_at) WHERE state = 'open';

CREATE TABLE deployment_transitions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id   bigint NOT NULL REFERENCES deployments (id),
    from_state      text NOT NULL,
    to_state        text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_transitions_deployment ON deployment_transitions (deployment_id, at);

-- Per-device status read from SCCM: the latest per deployment, and history.
CREATE TABLE device_results (
    deployment_id   bigint NOT NULL REFERENCES deployments (id),
    device_name     text NOT NULL,
    status_type     int NOT NULL,      -- SMS_SUMDeploymentAssetDetails.StatusType
    error_code      bigint,
    message         text NOT NULL DEFAULT '',
    observed_at     timestamptz NOT NULL,
    PRIMARY KEY (deployment_id, device_name)
);
CREATE TABLE device_result_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id   bigint NOT NULL REFERENCES deployments (id),
    device_name     text NOT NULL,
    status_type     int NOT NULL,
    error_code      bigint,
    message         text NOT NULL DEFAULT '',
    observed_at     timestamptz NOT NULL
);
CREATE INDEX device_result_history_device ON device_result_history (lower(device_name), observed_at);

-- A failure that must reach a person: one per device per change (or one per
-- missed window), with the alert and incident raised for it. Rows are written
-- before the remote calls and completed after, so a crash in between is seen.
CREATE TABLE failures (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_number    text NOT NULL REFERENCES changes (number),
    subject          text NOT NULL,     -- device name, or the deployment name of a missed window
    kind             text NOT NULL CHECK (kind IN ('error', 'no_status', 'missed_window', 'storm')),
    deployment_id    bigint REFERENCES deployments (id),
    error_code       bigint,
    message          text NOT NULL DEFAULT '',
    correlation_id   text NOT NULL UNIQUE,
    alert_id         text,
    incident_number  text,
    incident_sys_id  text,
    state            text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    UNIQUE (change_number, kind, subject)
);
