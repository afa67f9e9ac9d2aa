-- Forced remediation (issue #15, docs/architecture.md §9.2).

-- A wave of forced remediation: devices of one change that were neither
-- patched nor deferred at their deadline, put together into the forced
-- collection (AUTOPATCH_FORCE_COLLECTION) with a required deployment of
-- each of the change's update groups. The window keeper opens and closes
-- waves as it does windows (rows locked during the SCCM call, state moved
-- in the same transaction), one wave at a time across all changes and
-- replicas — the collection is one — in id order: the waves of a run are
-- inserted in their order, so wave k+1 opens only after wave k closed.
--   planned  waiting for its turn (not_before: the run's force time)
--   open     members set, deployments enabled until close_at
--   closed   deployments disabled; results_at: its results were read
--   failed   SCCM refused it, or it could not be opened in time (detail)
--   canceled the change was canceled before the wave opened
CREATE TABLE forced_waves (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_number text NOT NULL REFERENCES changes (number),
    run_at        timestamptz NOT NULL,   -- the force time the run belongs to
    wave          int NOT NULL,           -- 0, 1, … within the run
    not_before    timestamptz NOT NULL,
    duration      interval NOT NULL,      -- how long the deployments stay enabled
    collection    text NOT NULL,
    deployments   text[] NOT NULL,        -- SCCM names, one per update group
    update_groups text[] NOT NULL,
    state         text NOT NULL DEFAULT 'planned'
                  CHECK (state IN ('planned', 'open', 'closed', 'failed', 'canceled')),
    attempts      int NOT NULL DEFAULT 0,
    last_error    text NOT NULL DEFAULT '',
    detail        text NOT NULL DEFAULT '',
    opened_at     timestamptz,
    close_at      timestamptz,
    closed_at     timestamptz,
    results_at    timestamptz,
    created_at    timestamptz NOT NULL,
    UNIQUE (change_number, run_at, wave),
    CHECK ((state IN ('open', 'closed')) = (opened_at IS NOT NULL AND close_at IS NOT NULL))
);
CREATE INDEX forced_waves_planned ON forced_waves (id) WHERE state = 'planned';
CREATE INDEX forced_waves_open ON forced_waves (close_at) WHERE state = 'open';
CREATE INDEX forced_waves_change ON forced_waves (change_number);

-- Each forced device: at most once per change. result is the forced
-- deployment's outcome for it, read when its wave closed:
--   patched    SCCM reported success (status_time)
--   failed     SCCM reported an error (error_code)
--   no_status  no success or error by the end of the wave
--   unknown    SCCM has no record of the device: it could not be forced
CREATE TABLE forced_devices (
    change_number text NOT NULL REFERENCES changes (number),
    device_name   text NOT NULL,
    wave_id       bigint NOT NULL REFERENCES forced_waves (id),
    schedule_name text NOT NULL,
    deadline      timestamptz NOT NULL,
    planned_at    timestamptz NOT NULL,
    result        text CHECK (result IN ('patched', 'failed', 'no_status', 'unknown')),
    status_type   int,
    error_code    bigint,
    status_time   timestamptz,
    observed_at   timestamptz
);
CREATE UNIQUE INDEX forced_devices_device ON forced_devices (change_number, lower(device_name));
CREATE INDEX forced_devices_wave ON forced_devices (wave_id);

-- A forced device that failed is a failure of its own kind (one alert and
-- one incident), and so is a wave SCCM would not run.
ALTER TABLE failures DROP CONSTRAINT failures_kind_check;
ALTER TABLE failures ADD CONSTRAINT failures_kind_check
    CHECK (kind IN ('error', 'no_status', 'missed_window', 'storm', 'noncompliant', 'halt', 'forced'));
