/*
 * Script Action "Autopatch: retry webhook" — sends a delivery again when the
 * retry that AutopatchClient scheduled falls due.
 *
 * First register the event (System Policy > Events > Registry > New):
 *   Event name:   autopatch.webhook.retry
 *   Table:        Task [task]       (change_request and sc_req_item both extend task)
 *   Fired by:     AutopatchClient (gs.eventQueueScheduled)
 *   Description:  A webhook to autopatch failed for a reason that may pass; send it again.
 *
 * Then the Script Action (System Policy > Events > Script Actions > New):
 *   Name:         Autopatch: retry webhook
 *   Event name:   autopatch.webhook.retry
 *   Active:       true
 *   Script:       below
 *
 * The event carries the record (current, re-read when the event is processed,
 * so the body describes the record as it is now), parm1 = "change" or
 * "schedule-request" and parm2 = the number of the attempt to make.
 * AutopatchClient schedules the next retry itself if this one fails too, up to
 * the system property autopatch.max_attempts.
 */
(function () {
    var attempt = parseInt(event.parm2, 10);
    if (!(attempt > 1)) {
        gs.error('AutopatchClient: retry event without a valid attempt number: ' + event.parm2);
        return;
    }
    new AutopatchClient().retry(String(event.parm1), current, attempt);
})();
