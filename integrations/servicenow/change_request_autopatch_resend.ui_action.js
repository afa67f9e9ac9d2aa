/*
 * UI action "Send to autopatch" — sends a patching change to autopatch again
 * from its form, after the cause of a failed delivery was fixed (the work
 * note "autopatch was not told about this update" names it). autopatch
 * answers a version it already has "duplicate" and does nothing, so a
 * needless click is harmless.
 *
 *   Name:         Send to autopatch
 *   Table:        Change Request [change_request]
 *   Action name:  autopatch_resend
 *   Active:       true
 *   Order:        500
 *   Form button:  false
 *   Form link:    true
 *   Show insert:  false
 *   Show update:  true
 *   Client:       false
 *   Condition:    !current.u_autopatch_update_groups.nil() && gs.hasRole('itil')
 *   Hint:         Send this change to autopatch again (after a failed delivery)
 */
(function () {
    var delivered = new AutopatchClient().sendChange(current, 1);
    if (delivered) {
        gs.addInfoMessage('autopatch has this change.');
    } else {
        gs.addErrorMessage('autopatch did not take this change; the work notes say why.');
    }
    action.setRedirectURL(current);
})();
