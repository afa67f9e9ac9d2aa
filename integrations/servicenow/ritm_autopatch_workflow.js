/*
 * Sends an "Automated Patching" request item to autopatch (docs/architecture.md §4.3,
 * schedule-request body). Use ONE of the two forms below, depending on how
 * the catalog item is fulfilled. Both only hand the RITM to AutopatchClient,
 * which builds, signs, sends, schedules retries and records final failures.
 *
 * autopatch answers 202 at once and does the work in the background: it moves
 * each device into the schedule's SCCM collection (and out of every other
 * autopatch collection) and writes the outcome to the RITM's work notes. The
 * flow therefore does not wait for the result; close the item from the work
 * note, or let your usual fulfilment close it.
 *
 * ---------------------------------------------------------------------------
 * A. Flow Designer (recommended)
 *
 * Action "Autopatch: send schedule request" (Flow Designer > Action > New):
 *   Inputs:   requested_item   Reference > Requested Item [sc_req_item], mandatory
 *   Step:     Script
 *               Input variables:  ritm  ←  action input "requested_item" (data pill)
 *               Output variables: delivered (True/False)
 *               Script:           the function below
 *   Outputs:  delivered  ←  script step output "delivered"
 *
 * Flow "Automated Patching" (Flow Designer > Flow > New):
 *   Trigger:  Service Catalog
 *   Actions:  1. Get Catalog Variables (Requested Item, template "Automated Patching")
 *                — optional, only to show the variables in the flow's execution details
 *             2. Autopatch: send schedule request (requested_item = Trigger > Requested Item Record)
 *   Attach the flow to the catalog item (Process Engine > Flow).
 */
(function execute(inputs, outputs) {
    // inputs.ritm is the sc_req_item GlideRecord of the reference input.
    outputs.delivered = new AutopatchClient().sendScheduleRequest(inputs.ritm, 1);
})(inputs, outputs);

/*
 * ---------------------------------------------------------------------------
 * B. Legacy workflow (Workflow Editor, table sc_req_item)
 *
 * Add a "Run Script" activity after any approval, with this script:
 *
 *     // current is the sc_req_item the workflow runs on.
 *     var delivered = new AutopatchClient().sendScheduleRequest(current, 1);
 *     workflow.scratchpad.autopatch_delivered = delivered;
 *
 * A failed delivery is retried by the Script Action, outside the workflow, so
 * the workflow may continue either way.
 */
