-- The compliance ledger (issue #14, ARCHITECTURE §9.1). A device's outcome
-- in a change is decided by internal/compliance from the evidence below, at
-- the time it is asked for; what is stored is the evidence, each piece with
-- the time autopatch read it, so that an SCCM outage leaves the last
-- evidence in place and the API can say how old it is.

-- SMS_SUMDeploymentAssetDetails.LastEnforcementMessageID beside the status:
-- 9 is "pending system restart" (an installed update waiting for a reboot).
ALTER TABLE device_results ADD COLUMN enforcement_message int;
ALTER TABLE device_result_history ADD COLUMN enforcement_message int;

-- The client-health pre-flight (§9.4): each member's SCCM client state
-- (SMS_CombinedDeviceResources IsClient, ClientActiveStatus,
-- LastPolicyRequest) read AUTOPATCH_PREFLIGHT_LEAD before its window.
CREATE TABLE client_health (
    change_number       text NOT NULL REFERENCES changes (number),
    device_name         text NOT NULL,
    schedule_name       text NOT NULL,
    installed           boolean NOT NULL,
    active              boolean NOT NULL,
    last_policy_request timestamptz,
    observed_at         timestamptz NOT NULL,
    PRIMARY KEY (change_number, device_name)
);

-- The compliance read of manual_patch and manual_reboot devices: how many
-- updates of the change's update groups each still requires
-- (SMS_UpdateComplianceStatus Status 2) and whether a restart is pending
-- (SMS_CombinedDeviceResources.ClientState ≠ 0). The latest read per device.
CREATE TABLE manual_compliance (
    change_number  text NOT NULL REFERENCES changes (number),
    device_name    text NOT NULL,
    schedule_name  text NOT NULL,
    required       int NOT NULL,
    reboot_pending boolean NOT NULL,
    observed_at    timestamptz NOT NULL,
    PRIMARY KEY (change_number, device_name)
);

-- The outcome each device last had, so that a change of outcome is seen
-- once (autopatch_patched_outside_window_total counts devices, not reads),
-- and the gauges by cycle read the same truth on every replica.
CREATE TABLE compliance_outcomes (
    change_number text NOT NULL REFERENCES changes (number),
    device_name   text NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('pending', 'patched_in_window', 'patched_outside_window',
                      'pending_reboot', 'failed', 'not_reported', 'client_inactive', 'manual_compliant',
                      'manual_noncompliant', 'deferred', 'forced')),
    by_deadline   boolean NOT NULL DEFAULT false,
    cycle         text NOT NULL,             -- YYYY-MM: the UTC month of the change's start
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (change_number, device_name)
);
CREATE INDEX compliance_outcomes_cycle ON compliance_outcomes (cycle);

-- Notes written once per change: the summary when its last window closed
-- ('closed'), the pre-flight of a window ('preflight <schedule> <start>'),
-- the reminder to a manual schedule's owner ('reminder <schedule>').
CREATE TABLE compliance_notes (
    change_number text NOT NULL REFERENCES changes (number),
    note          text NOT NULL,
    written_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (change_number, note)
);

-- A manual_patch device still not compliant at its deadline is a failure of
-- its own kind: one incident per device per change, like the others.
ALTER TABLE failures DROP CONSTRAINT failures_kind_check;
ALTER TABLE failures ADD CONSTRAINT failures_kind_check
    CHECK (kind IN ('error', 'no_status', 'missed_window', 'storm', 'noncompliant'));
