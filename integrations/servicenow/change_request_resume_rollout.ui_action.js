/*
 * UI Action "Resume autopatch rollout" — resumes a change whose rollout
 * autopatch holds (error budget exceeded, tier gating, or a pause), so its
 * next windows open at their time. Windows whose time passed while held stay
 * missed. The reason is the work note the user writes before pressing the
 * button; autopatch keeps it, with the user's name, in the change's history
 * (GET /api/v1/changes/{number}: holds[].release_reason).
 *
 * System Definition > UI Actions > New:
 *   Name:           Resume autopatch rollout
 *   Table:          Change Request [change_request]
 *   Action name:    autopatch_resume_rollout
 *   Active:         true
 *   Show update:    true
 *   Form button:    true
 *   Client:         true
 *   Onclick:        autopatchResumeRollout()
 *   Condition:      !current.u_autopatch_update_groups.nil() && (gs.hasRole('change_manager') || gs.hasRole('admin'))
 *
 * Needs the system property autopatch.api_token (password2, private): the
 * value of AUTOPATCH_API_TOKEN. To pause instead, tick "On hold": the
 * business rule "Autopatch: notify change" sends it and autopatch holds the
 * windows until it is cleared.
 *
 * The script runs twice: in the browser (onclick: the reason must be
 * written), then on the server (the resubmitted form, where window is
 * undefined), which calls autopatch and records its answer.
 */
function autopatchResumeRollout() {
    var reason = g_form.getValue('work_notes');
    if (!reason) {
        g_form.showFieldMsg('work_notes', 'Write in the work notes why the rollout may go on (what was found and fixed), then press Resume autopatch rollout again.', 'error');
        return false;
    }
    if (!confirm('Resume the autopatch rollout of ' + g_form.getValue('number') + '? Its next windows will open at their time.')) {
        return false;
    }
    gsftSubmit(null, g_form.getFormElement(), 'autopatch_resume_rollout');
    return true;
}

if (typeof window == 'undefined') {
    autopatchResumeRolloutServer();
}

function autopatchResumeRolloutServer() {
    var reason = String(current.work_notes || '');
    if (!reason) {
        gs.addErrorMessage('Write the reason in the work notes first.');
        action.setRedirectURL(current);
        return;
    }
    var who = gs.getUserName();
    var result = new AutopatchClient().resumeChange(current, reason + ' (resumed by ' + who + ' in ServiceNow)');
    var outcome;
    if (result.status == 200) {
        outcome = 'autopatch resumed the rollout; its next windows open at their time.';
        gs.addInfoMessage(outcome);
    } else if (result.status == 409) {
        outcome = 'autopatch: the rollout is not held; nothing to resume.';
        gs.addInfoMessage(outcome);
    } else {
        outcome = 'autopatch could not resume the rollout: ' + (result.status ? 'HTTP ' + result.status + ' ' + result.body : result.error);
        gs.addErrorMessage(outcome);
        gs.error('AutopatchClient: ' + current.getDisplayValue() + ': ' + outcome);
    }
    // Saves the reason the user wrote, then what autopatch answered.
    current.update();
    current.work_notes = outcome;
    current.update();
    action.setRedirectURL(current);
}
