/*
 * Business rule "Autopatch: send schedule request" — sends a request item of
 * the catalog item "Automated Patching" to autopatch when it is created, so
 * the item works as soon as the update set is committed, without building a
 * flow. Use it OR the flow / workflow of ritm_autopatch_workflow.js (which
 * lets an approval come first), not both: with a flow, set this rule
 * inactive. autopatch would answer a second delivery of the same version
 * "duplicate" anyway.
 *
 *   Name:       Autopatch: send schedule request
 *   Table:      Requested Item [sc_req_item]
 *   Active:     true
 *   Advanced:   true
 *   When:       async
 *   Order:      100
 *   Insert:     true
 *   Update:     false
 *   Delete:     false
 *   Query:      false
 *   Condition:  current.cat_item.name == 'Automated Patching'
 *
 * Async, so the order's transaction (and the item's variables) are committed
 * before the rule reads them, and the requester never waits for autopatch.
 * A failed delivery is retried by the Script Action "Autopatch: retry
 * webhook"; the final outcome is a work note on the item.
 */
(function executeRule(current, previous /* null: async rules have no previous */) {
    new AutopatchClient().sendScheduleRequest(current, 1);
})(current, previous);
