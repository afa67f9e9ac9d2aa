-- Rollout control (issue #16, ARCHITECTURE §9.3): error budget, tier
-- gating, pause and resume.

-- A held deployment is never enabled: the code that opens windows selects
-- only 'created' rows, so a hold is a database state, not a decision a
-- process has to remember. held_from is the state it returns to when the
-- hold is released (planned: not yet created in SCCM; created: created
-- disabled). A held deployment keeps its SCCM name reserved.
ALTER TABLE deployments DROP CONSTRAINT deployments_state_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_state_check
    CHECK (state IN ('planned', 'created', 'open', 'closed', 'missed', 'obsolete', 'deleted', 'failed', 'held'));
ALTER TABLE deployments ADD COLUMN held_from text CHECK (held_from IN ('planned', 'created'));
ALTER TABLE deployments ADD CONSTRAINT deployments_held_from CHECK ((state = 'held') = (held_from IS NOT NULL));
DROP INDEX deployments_pending_name;
CREATE UNIQUE INDEX deployments_pending_name ON deployments (name) WHERE state IN ('planned', 'created', 'held');

-- From the change webhook: ServiceNow's "On hold", and the change's own
-- error budget (NULL: AUTOPATCH_ERROR_BUDGET), as rollout.ParseBudget
-- writes it. A resume accepts the failures counted so far: the budget then
-- applies to what the change's closed windows add after it.
ALTER TABLE changes
    ADD COLUMN on_hold               boolean NOT NULL DEFAULT false,
    ADD COLUMN error_budget          text,
    ADD COLUMN budget_failures_acked int NOT NULL DEFAULT 0,
    ADD COLUMN budget_devices_acked  int NOT NULL DEFAULT 0;

-- Every hold of a change and its release: the change's rollout history.
--   budget  the closed windows' failures exceeded the error budget (a halt:
--           one SCOM alert and one incident, the failure row failure_id)
--   tier    a frontend window after a failed backend or middle member of
--           its service (scope: the window, schedule@start)
--   pause   ServiceNow's On hold
-- A hold with scope '' covers every window of the change not yet open.
CREATE TABLE rollout_holds (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_number   text NOT NULL REFERENCES changes (number),
    kind            text NOT NULL CHECK (kind IN ('budget', 'tier', 'pause')),
    scope           text NOT NULL DEFAULT '',
    reason          text NOT NULL,
    failure_id      bigint,
    held_at         timestamptz NOT NULL,
    released_at     timestamptz,
    release_reason  text,
    released_by     text
);
CREATE UNIQUE INDEX rollout_holds_active ON rollout_holds (change_number, kind, scope) WHERE released_at IS NULL;
CREATE INDEX rollout_holds_change ON rollout_holds (change_number, held_at);

-- A halt is a failure of its own kind: one alert and one incident per halt.
ALTER TABLE failures DROP CONSTRAINT failures_kind_check;
ALTER TABLE failures ADD CONSTRAINT failures_kind_check
    CHECK (kind IN ('error', 'no_status', 'missed_window', 'storm', 'noncompliant', 'halt'));
ALTER TABLE rollout_holds ADD CONSTRAINT rollout_holds_failure FOREIGN KEY (failure_id) REFERENCES failures (id);
