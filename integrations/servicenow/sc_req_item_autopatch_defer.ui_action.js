/*
 * UI action "Send deferral to autopatch" — sends an approved "Defer
 * patching" request item to autopatch (docs/architecture.md §9.2): its devices
 * of the change are not forced until the item's "until", at most 7 days
 * after their deadline. autopatch notes the deferral on the change and on
 * this item, and answers a refusal (more than 7 days, a device not in the
 * change) or a device already forced in the work notes, through
 * AutopatchClient. Sending it twice is harmless: the same version of the
 * item is a duplicate.
 *
 *   Name:         Send deferral to autopatch
 *   Table:        Requested Item [sc_req_item]
 *   Action name:  autopatch_defer
 *   Active:       true
 *   Order:        500
 *   Form button:  true
 *   Form link:    false
 *   Show insert:  false
 *   Show update:  true
 *   Client:       false
 *   Condition:    current.approval == 'approved' && current.cat_item.name == 'Defer patching' && gs.hasRole('itil')
 *   Hint:         Send this approved deferral to autopatch
 */
(function () {
    var delivered = new AutopatchClient().sendDeferral(current, 1);
    if (delivered) {
        gs.addInfoMessage('autopatch has this deferral; its work note follows.');
    } else {
        gs.addErrorMessage('autopatch did not take this deferral; the work notes say why.');
    }
    action.setRedirectURL(current);
})();
