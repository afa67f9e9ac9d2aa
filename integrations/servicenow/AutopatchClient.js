/*
 * AutopatchClient — Script Include (global scope) that builds, signs and sends
 * autopatch's webhooks (docs/architecture.md §4.3).
 *
 *   Name:                AutopatchClient
 *   API Name:            global.AutopatchClient
 *   Accessible from:     All application scopes
 *   Client callable:     false
 *   Active:              true
 *
 * Used by:
 *   - the async business rule "Autopatch: notify change" (change_request_autopatch.br.js),
 *   - the RITM flow action / workflow activity (ritm_autopatch_workflow.js),
 *   - the Script Action "Autopatch: retry webhook" (autopatch_webhook_retry.action.js),
 *   - the UI action "Resume autopatch rollout" (change_request_resume_rollout.ui_action.js).
 *
 * System properties (sys_properties), see README.md:
 *   autopatch.url                     https://autopatch.corp.example.com (no trailing slash)
 *   autopatch.webhook.secret_base64   base64 of AUTOPATCH_WEBHOOK_SECRET (type password2, private)
 *   autopatch.webhook.user            optional: HTTP Basic instead of HMAC (AUTOPATCH_WEBHOOK_USER)
 *   autopatch.webhook.password        optional: (password2) AUTOPATCH_WEBHOOK_PASSWORD
 *   autopatch.http_timeout_ms         default 30000
 *   autopatch.mid_server              optional: MID Server name when autopatch is not reachable from the cloud
 *   autopatch.max_attempts            default 8 (1 + 7 scheduled retries over about 2 hours)
 *   autopatch.api_token               (password2) AUTOPATCH_API_TOKEN, for the UI action
 *                                     "Resume autopatch rollout" (resumeChange)
 *
 * Delivery semantics. RESTMessageV2 never retries by itself. A delivery that
 * fails for a reason that may pass (no answer, 429, 5xx) is retried by firing
 * the event "autopatch.webhook.retry" with gs.eventQueueScheduled, 1, 2, 4, 8,
 * 16, 32 then 60 minutes later; the Script Action rebuilds the body from the
 * record as it is *then*. A refused delivery (400, 401, 413, 415) is not
 * retried. Either way the final failure is written to the record's work notes
 * and the system log. autopatch tolerates late and repeated deliveries: the
 * event_id names the record's version (sys_id + sys_mod_count), so a
 * retry of a delivery that did arrive is answered "duplicate" and ignored, and
 * a delivery older than one already applied is recorded and ignored.
 *
 * Signing. X-Autopatch-Timestamp is the current unix time in seconds and
 * X-Autopatch-Signature is "sha256=" + base64(HMAC-SHA256(secret,
 * timestamp + "." + body)). GlideCertificateEncryption.generateMac takes the
 * key base64-encoded, hence the secret_base64 property. The body is made pure
 * ASCII (every non-ASCII character as a \uXXXX escape, which JSON allows), so
 * the bytes signed and the bytes RESTMessageV2 sends are the same whatever
 * character set either side assumes.
 *
 * Written for the Rhino engine in ES5 style: var, no arrow functions, no
 * template literals, no let/const.
 */
var AutopatchClient = Class.create();

AutopatchClient.EVENT_RETRY = 'autopatch.webhook.retry';
AutopatchClient.KIND_CHANGE = 'change';
AutopatchClient.KIND_SCHEDULE_REQUEST = 'schedule-request';
AutopatchClient.KIND_DEFERRAL = 'deferral';

// change_request state values of the stock change model, as the words
// autopatch's contract uses. An unknown value is sent as it is.
AutopatchClient.CHANGE_STATES = {
    '-5': 'new',
    '-4': 'assess',
    '-3': 'authorize',
    '-2': 'scheduled',
    '-1': 'implement',
    '0': 'review',
    '3': 'closed',
    '4': 'canceled'
};

AutopatchClient.prototype = {
    initialize: function () {
        this.baseUrl = String(gs.getProperty('autopatch.url', '')).replace(/\/+$/, '');
        this.secretBase64 = String(gs.getProperty('autopatch.webhook.secret_base64', ''));
        this.basicUser = String(gs.getProperty('autopatch.webhook.user', ''));
        this.basicPassword = String(gs.getProperty('autopatch.webhook.password', ''));
        this.timeoutMs = parseInt(gs.getProperty('autopatch.http_timeout_ms', '30000'), 10) || 30000;
        this.midServer = String(gs.getProperty('autopatch.mid_server', ''));
        this.maxAttempts = parseInt(gs.getProperty('autopatch.max_attempts', '8'), 10) || 8;
    },

    /*
     * sendChange posts the change body for a change_request GlideRecord.
     * attempt is 1 for the first delivery. Returns true when autopatch
     * accepted it (or already had it).
     */
    sendChange: function (change, attempt) {
        var body;
        try {
            body = this.buildChangeBody(change);
        } catch (e) {
            this._fail(change, 'cannot build the change body: ' + e, attempt);
            return false;
        }
        return this._deliver(AutopatchClient.KIND_CHANGE, change, body, attempt || 1);
    },

    /*
     * sendScheduleRequest posts the schedule-request body for a sc_req_item
     * GlideRecord of the "Automated Patching" catalog item.
     */
    sendScheduleRequest: function (ritm, attempt) {
        var body;
        try {
            body = this.buildScheduleRequestBody(ritm);
        } catch (e) {
            this._fail(ritm, 'cannot build the schedule request: ' + e, attempt);
            return false;
        }
        return this._deliver(AutopatchClient.KIND_SCHEDULE_REQUEST, ritm, body, attempt || 1);
    },

    /*
     * retry is what the Script Action calls when a scheduled retry is due:
     * kind is event.parm1, record is current, attempt is event.parm2.
     */
    retry: function (kind, record, attempt) {
        if (kind == AutopatchClient.KIND_CHANGE) {
            return this.sendChange(record, attempt);
        }
        if (kind == AutopatchClient.KIND_SCHEDULE_REQUEST) {
            return this.sendScheduleRequest(record, attempt);
        }
        if (kind == AutopatchClient.KIND_DEFERRAL) {
            return this.sendDeferral(record, attempt);
        }
        gs.error('AutopatchClient: unknown retry kind "' + kind + '" for ' + record.getDisplayValue());
        return false;
    },

    /*
     * buildChangeBody returns the change body of docs/architecture.md §4.3. Dates are
     * getValue's "YYYY-MM-DD HH:MM:SS" in UTC. The update groups and the
     * optional schedules are one per line in u_autopatch_update_groups and
     * u_autopatch_schedules (names may contain commas, so lines, not commas).
     */
    buildChangeBody: function (change) {
        var state = this._value(change, 'state');
        var body = {
            event_id: this._eventId(change),
            change: {
                number: this._value(change, 'number'),
                sys_id: String(change.getUniqueValue()),
                type: this._value(change, 'type'),
                state: AutopatchClient.CHANGE_STATES.hasOwnProperty(state) ? AutopatchClient.CHANGE_STATES[state] : state,
                approval: this._value(change, 'approval'),
                start_date: this._value(change, 'start_date'),
                end_date: this._value(change, 'end_date'),
                short_description: this._value(change, 'short_description'),
                sys_updated_on: this._value(change, 'sys_updated_on'),
                // "On hold": autopatch holds the change's windows that have
                // not opened while it is true.
                on_hold: this._value(change, 'on_hold') == '1' || this._value(change, 'on_hold') == 'true'
            },
            patching: {
                software_update_groups: this._lines(this._value(change, 'u_autopatch_update_groups'))
            }
        };
        // Optional error budget (u_autopatch_error_budget): a whole number
        // of failures is sent as a JSON number, a share such as 10% as a
        // string; anything else is sent as typed and autopatch refuses it
        // (400 naming patching.error_budget, written to the work notes).
        var budget = change.isValidField('u_autopatch_error_budget') ?
            this._value(change, 'u_autopatch_error_budget').replace(/^\s+|\s+$/g, '') : '';
        if (/^[0-9]{1,9}$/.test(budget)) {
            body.patching.error_budget = parseInt(budget, 10);
        } else if (budget) {
            body.patching.error_budget = budget;
        }
        var schedules = this._lines(this._value(change, 'u_autopatch_schedules'));
        if (schedules.length > 0) {
            // Omitted means every automatic and manual_reboot schedule.
            body.patching.schedules = schedules;
        }
        // Optional (docs/architecture.md §9.2): omitted means normal, and the
        // classification's deadline.
        if (change.isValidField('u_autopatch_classification') && this._value(change, 'u_autopatch_classification')) {
            body.patching.classification = this._value(change, 'u_autopatch_classification').toLowerCase();
        }
        if (change.isValidField('u_autopatch_deadline') && this._value(change, 'u_autopatch_deadline')) {
            body.patching.deadline = this._value(change, 'u_autopatch_deadline');
        }
        return body;
    },

    /*
     * sendDeferral posts the deferral body for an approved sc_req_item
     * GlideRecord of the "Defer patching" catalog item.
     */
    sendDeferral: function (ritm, attempt) {
        var body;
        try {
            body = this.buildDeferralBody(ritm);
        } catch (e) {
            this._fail(ritm, 'cannot build the deferral: ' + e, attempt);
            return false;
        }
        return this._deliver(AutopatchClient.KIND_DEFERRAL, ritm, body, attempt || 1);
    },

    /*
     * buildDeferralBody returns the deferral body of docs/architecture.md §9.2
     * from the item's variables: autopatch_change (reference to
     * change_request), autopatch_defer_devices (list collector of
     * cmdb_ci_server), autopatch_until (date/time, read in UTC) and
     * autopatch_reason (the business case); approved_by is the approver of
     * the item's approved approval.
     */
    buildDeferralBody: function (ritm) {
        var change = new GlideRecord('change_request');
        if (!change.get(String(ritm.variables.autopatch_change))) {
            throw 'the request names no change';
        }
        var ids = String(ritm.variables.autopatch_defer_devices || '').split(',');
        var devices = [];
        for (var i = 0; i < ids.length; i++) {
            if (ids[i]) {
                devices.push(this._name('cmdb_ci_server', ids[i]));
            }
        }
        if (devices.length === 0) {
            throw 'the request names no device';
        }
        var until = new GlideDateTime();
        until.setDisplayValue(String(ritm.variables.autopatch_until));
        var approver = new GlideRecord('sysapproval_approver');
        approver.addQuery('sysapproval', ritm.getUniqueValue());
        approver.addQuery('state', 'approved');
        approver.orderByDesc('sys_updated_on');
        approver.setLimit(1);
        approver.query();
        if (!approver.next()) {
            throw 'the request is not approved';
        }
        return {
            event_id: this._eventId(ritm) + ':deferral',
            request_item: {
                number: this._value(ritm, 'number'),
                sys_id: String(ritm.getUniqueValue())
            },
            change: this._value(change, 'number'),
            devices: devices,
            until: String(until.getValue()),
            reason: String(ritm.variables.autopatch_reason || ''),
            approved_by: String(approver.approver.user_name || '')
        };
    },

    /*
     * resumeChange asks autopatch to resume the held rollout of a
     * change_request GlideRecord (POST /api/v1/changes/{number}/resume, with
     * the bearer token in the system property autopatch.api_token). Returns
     * {status, body, error}: 200 resumed, 409 not held, 404 unknown to
     * autopatch. Not retried: a person is waiting for the answer.
     */
    resumeChange: function (change, reason) {
        var token = String(gs.getProperty('autopatch.api_token', ''));
        if (!this.baseUrl || !token) {
            return { status: 0, body: '', error: 'system properties autopatch.url and autopatch.api_token must be set' };
        }
        var json = this.toJSON({ reason: String(reason) });
        var path = '/api/v1/changes/' + encodeURIComponent(this._value(change, 'number')) + '/resume';
        return this._post(path, json, token);
    },

    /*
     * buildScheduleRequestBody returns the schedule-request body of
     * docs/architecture.md §4.3 from the item's variables: autopatch_schedule (select
     * box, the schedule's name) and the multi-row variable set
     * autopatch_devices (device → cmdb_ci_server, service → cmdb_ci_service,
     * tier → backend|middle|frontend). request_item.sys_updated_on is an
     * extra field autopatch uses to tell versions apart.
     */
    buildScheduleRequestBody: function (ritm) {
        // A multi-row variable set reads as a JSON array of rows keyed by
        // the column variables' names; reference columns hold sys_ids.
        var raw = String(ritm.variables.autopatch_devices);
        var rows = raw ? JSON.parse(raw) : [];
        var devices = [];
        for (var i = 0; i < rows.length; i++) {
            devices.push({
                name: this._name('cmdb_ci_server', rows[i].device),
                service: this._name('cmdb_ci_service', rows[i].service),
                tier: String(rows[i].tier || '')
            });
        }
        if (devices.length === 0) {
            throw 'the request names no device';
        }
        var requestedFor = ritm.isValidField('requested_for') && !ritm.requested_for.nil() ?
            ritm.requested_for.user_name : ritm.request.requested_for.user_name;
        return {
            event_id: this._eventId(ritm),
            request_item: {
                number: this._value(ritm, 'number'),
                sys_id: String(ritm.getUniqueValue()),
                sys_updated_on: this._value(ritm, 'sys_updated_on')
            },
            requested_for: String(requestedFor || ''),
            schedule: String(ritm.variables.autopatch_schedule || ''),
            devices: devices
        };
    },

    /*
     * toJSON serialises body as pure ASCII JSON: JSON.stringify, then every
     * character above U+007E as \uXXXX (surrogate pairs become two escapes,
     * which JSON decoders join again).
     */
    toJSON: function (body) {
        return JSON.stringify(body).replace(/[\u007f-\uffff]/g, function (c) {
            return '\\u' + ('0000' + c.charCodeAt(0).toString(16)).slice(-4);
        });
    },

    /*
     * sign returns the X-Autopatch-Signature value for timestamp (unix
     * seconds, as a string) and the exact body string that will be sent.
     */
    sign: function (timestamp, json) {
        var mac = new GlideCertificateEncryption().generateMac(this.secretBase64, 'HmacSHA256', timestamp + '.' + json);
        return 'sha256=' + String(mac);
    },

    _deliver: function (kind, record, body, attempt) {
        if (!this.baseUrl) {
            this._fail(record, 'system property autopatch.url is not set', attempt);
            return false;
        }
        if (!this.secretBase64 && !this.basicUser) {
            this._fail(record, 'neither autopatch.webhook.secret_base64 nor autopatch.webhook.user is set', attempt);
            return false;
        }
        var json = this.toJSON(body);
        var result = this._post('/webhooks/servicenow/' + kind, json);
        var what = kind + ' ' + record.getDisplayValue() + ' (' + body.event_id + ', attempt ' + attempt + ')';
        if (result.status == 202 || result.status == 200) {
            gs.info('AutopatchClient: delivered ' + what + ': HTTP ' + result.status + ' ' + result.body);
            return true;
        }
        var reason = result.status ? 'HTTP ' + result.status + ' ' + result.body : result.error;
        if (result.retryable && attempt < this.maxAttempts) {
            var delayMinutes = Math.min(Math.pow(2, attempt - 1), 60);
            var when = new GlideDateTime();
            when.addSeconds(delayMinutes * 60);
            gs.warn('AutopatchClient: ' + what + ' failed (' + reason + '); retrying in ' + delayMinutes + ' min');
            gs.eventQueueScheduled(AutopatchClient.EVENT_RETRY, record, kind, String(attempt + 1), when);
            return false;
        }
        this._fail(record, 'delivery of ' + what + ' failed: ' + reason, attempt);
        return false;
    },

    /*
     * _post sends one request and reports {status, body, error, retryable}.
     * status is 0 when no HTTP answer arrived.
     */
    _post: function (path, json, bearer) {
        var result = { status: 0, body: '', error: '', retryable: false };
        try {
            var rm = new sn_ws.RESTMessageV2();
            rm.setEndpoint(this.baseUrl + path);
            rm.setHttpMethod('post');
            rm.setHttpTimeout(this.timeoutMs);
            rm.setRequestHeader('Content-Type', 'application/json');
            rm.setRequestHeader('Accept', 'application/json');
            if (bearer) {
                // The API, not a webhook: the bearer token only.
                rm.setRequestHeader('Authorization', 'Bearer ' + bearer);
            } else if (this.secretBase64) {
                var timestamp = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
                rm.setRequestHeader('X-Autopatch-Timestamp', timestamp);
                rm.setRequestHeader('X-Autopatch-Signature', this.sign(timestamp, json));
            }
            if (this.basicUser && !bearer) {
                rm.setBasicAuth(this.basicUser, this.basicPassword);
            }
            rm.setRequestBody(json);
            var response;
            if (this.midServer) {
                // Through a MID Server the call is queued; wait for its answer.
                rm.setMIDServer(this.midServer);
                response = rm.executeAsync();
                response.waitForResponse(Math.ceil(this.timeoutMs / 1000));
            } else {
                response = rm.execute();
            }
            result.status = parseInt(response.getStatusCode(), 10) || 0;
            result.body = String(response.getBody() || '').substring(0, 500);
            if (response.haveError() && result.status === 0) {
                result.error = 'no answer: ' + response.getErrorMessage() + ' (code ' + response.getErrorCode() + ')';
            }
        } catch (e) {
            result.error = 'no answer: ' + e;
        }
        result.retryable = result.status === 0 || result.status == 429 || result.status >= 500;
        return result;
    },

    // _fail logs a final failure and writes it to the record's work notes,
    // where the change manager or the requester's fulfiller will see it.
    _fail: function (record, message, attempt) {
        gs.error('AutopatchClient: ' + record.getDisplayValue() + ': ' + message);
        try {
            var gr = new GlideRecord(record.getTableName());
            if (gr.get(record.getUniqueValue())) {
                gr.work_notes = 'autopatch was not told about this update: ' + message +
                    (attempt ? ' (after ' + attempt + ' attempt(s))' : '') +
                    '. Check the system log (messages starting "AutopatchClient:") and autopatch, ' +
                    'then resend as described under "Resending" in autopatch\'s integrations/servicenow/README.md.';
                // The business rule's condition ignores work notes, so this
                // update does not send the change again.
                gr.update();
            }
        } catch (e) {
            gs.error('AutopatchClient: cannot write the failure to ' + record.getDisplayValue() + ': ' + e);
        }
    },

    // _eventId names this version of the record: a re-delivery of the same
    // version is a duplicate for autopatch, any later update is new.
    _eventId: function (record) {
        return record.getTableName() + ':' + record.getUniqueValue() + ':' + this._value(record, 'sys_mod_count');
    },

    // _value returns a field's value as a JavaScript string ('' when empty):
    // getValue returns null for an empty field and Java strings otherwise.
    _value: function (record, field) {
        var v = record.getValue(field);
        return v === null || v === undefined ? '' : String(v);
    },

    // _lines splits a multi-line text field into trimmed, non-empty lines.
    _lines: function (text) {
        var out = [];
        var parts = String(text || '').split(/\r?\n/);
        for (var i = 0; i < parts.length; i++) {
            var line = parts[i].replace(/^\s+|\s+$/g, '');
            if (line) {
                out.push(line);
            }
        }
        return out;
    },

    // _name returns the name of the record sysId in table, or throws.
    _name: function (table, sysId) {
        var gr = new GlideRecord(table);
        if (!sysId || !gr.get(String(sysId))) {
            throw 'no ' + table + ' record ' + sysId;
        }
        return this._value(gr, 'name');
    },

    type: 'AutopatchClient'
};
