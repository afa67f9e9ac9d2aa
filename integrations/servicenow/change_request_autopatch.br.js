/*
 * Business rule "Autopatch: notify change" — tells autopatch about patching
 * changes (docs/architecture.md §4.3, change body).
 *
 *   Name:       Autopatch: notify change
 *   Table:      Change Request [change_request]
 *   Active:     true
 *   Advanced:   true
 *   When:       async          (runs in the background after the transaction;
 *                               the user's save never waits for autopatch)
 *   Order:      100
 *   Insert:     true           (a standard change can be born approved)
 *   Update:     true
 *   Delete:     false
 *   Query:      false
 *   Condition:  !current.u_autopatch_update_groups.nil() && (current.approval.changesTo('approved') || current.approval.changesFrom('approved') || current.state.changesTo('4') || current.start_date.changes() || current.end_date.changes() || current.u_autopatch_update_groups.changes() || current.u_autopatch_schedules.changes() || current.on_hold.changes() || current.u_autopatch_error_budget.changes())
 *               (one line; the update set carries it, or paste it into the Condition field)
 *
 * Which changes are patching changes: those whose "Autopatch update groups"
 * field (u_autopatch_update_groups, one Software Update Group per line) is
 * not empty. The patching admin fills it in when raising the change; the
 * optional "Autopatch schedules" field (u_autopatch_schedules, one schedule
 * name per line) limits the change to some schedules (empty = every automatic
 * and manual_reboot schedule). See README.md for creating both fields.
 *
 * Why the condition is in the Condition field and not in the script: an
 * async rule runs later, in a scheduler worker, with `current` re-read from
 * the database and no `previous`, so changes()/changesTo() only work in the
 * condition, which the platform evaluates during the update itself.
 *
 * What fires it, and what autopatch does with it:
 *   approval becomes "approved"            → plan the change and create its deployments
 *   approval leaves "approved" (withdrawn, → unwind: delete deployments not yet open,
 *     rejected, reset by a re-approval)       disable open ones
 *   state becomes 4 (Canceled)             → unwind
 *   planned start or end date changes      → re-plan
 *   update groups or schedules change      → re-plan
 *   On hold set or cleared                 → hold the windows not yet open, or release them
 *   error budget changes                   → the next windows are judged by the new budget
 * The rule sends the change as it is; autopatch decides from approval and
 * state, so one update that does several of these sends one delivery.
 *
 * Because `current` is read when the rule runs, two quick updates may both
 * send the latest version; they carry the same event_id (sys_id +
 * sys_mod_count) and autopatch answers the second "duplicate".
 */
(function executeRule(current, previous /* null: async rules have no previous */) {
    new AutopatchClient().sendChange(current, 1);
})(current, previous);
