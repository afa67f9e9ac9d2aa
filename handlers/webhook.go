package handlers

import (
	"context"
	"crypto/sha256"
	_ "embed" // the OpenAPI document
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/autopatch/autopatch/internal/deadline"
	"github.com/autopatch/autopatch/internal/ingest"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/rollout"
	"github.com/autopatch/autopatch/internal/store"
)

// Webhook routes (docs/architecture.md §4.3).
const (
	PathChangeWebhook          = "/webhooks/servicenow/change"
	PathScheduleRequestWebhook = "/webhooks/servicenow/schedule-request"
)

// WebhookOptions are the dependencies of the ServiceNow webhooks.
type WebhookOptions struct {
	Store *store.Store
	Jobs  ingest.JobInserter
	Auth  WebhookAuth
	// Now is the clock the signature timestamp is checked against; nil is
	// time.Now.
	Now func() time.Time
	// ledger decides deadlines for the deferral webhook (Options.Compliance).
	ledger ledger.Options
}

// WebhookResponse is the answer to an authenticated, valid delivery.
type WebhookResponse struct {
	// ID identifies the recorded delivery; for a duplicate, the first one.
	ID uuid.UUID `json:"id"`
	// Status is accepted (202), duplicate (200) or stale (200).
	Status string `json:"status"`
}

// webhooks serves the two ServiceNow webhooks.
type webhooks struct {
	store    *store.Store
	ingester *ingest.Ingester
	auth     WebhookAuth
	now      func() time.Time
	logger   *slog.Logger
	metrics  webhookMetrics
	ledger   ledger.Options
}

// registerWebhooks adds the webhook routes to e and their metrics to reg.
func registerWebhooks(e *echo.Echo, opts WebhookOptions, logger *slog.Logger, reg prometheus.Registerer) {
	w := &webhooks{store: opts.Store, ingester: ingest.New(opts.Store.Pool, opts.Jobs, reg), auth: opts.Auth, now: opts.Now, logger: logger, metrics: newWebhookMetrics(reg),
		ledger: opts.ledger}
	if w.now == nil {
		w.now = time.Now
	}
	e.POST(PathChangeWebhook, w.change, w.verifyWebhook(store.EventChange))
	e.POST(PathScheduleRequestWebhook, w.scheduleRequest, w.verifyWebhook(store.EventScheduleRequest))
	e.POST(PathDeferralWebhook, w.deferral, w.verifyWebhook(store.EventDeferral))
}

// webhookMetrics counts deliveries by kind and outcome: accepted,
// duplicate, stale, or the reason of a refusal (unauthorized,
// body_too_large, unsupported_media_type, bad_json, validation_failed,
// error). A body refused for its declared Content-Length never reaches the
// webhook middleware: it shows in autopatch_http_request_duration_seconds
// with code 413.
type webhookMetrics struct {
	deliveries *prometheus.CounterVec
}

func newWebhookMetrics(reg prometheus.Registerer) webhookMetrics {
	m := webhookMetrics{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autopatch_webhook_deliveries_total",
		Help: "ServiceNow webhook deliveries by kind (change, schedule_request) and outcome (accepted, duplicate, stale, or why refused).",
	}, []string{"kind", "outcome"})}
	reg.MustRegister(m.deliveries)
	return m
}

func (m webhookMetrics) observe(kind, outcome string) {
	m.deliveries.WithLabelValues(kind, outcome).Inc()
}

// --- change -----------------------------------------------------------------

// changeWebhook is the change body (docs/architecture.md §4.3).
type changeWebhook struct {
	EventID  string         `json:"event_id,omitempty" validate:"max=255,graphic"`
	Change   *changeRecord  `json:"change" validate:"required"`
	Patching *patchingInput `json:"patching" validate:"required"`
}

type changeRecord struct {
	Number           string `json:"number" validate:"required,max=40,change_number"`
	SysID            string `json:"sys_id" validate:"required,sys_id"`
	Type             string `json:"type,omitempty" validate:"max=64,graphic"`
	State            string `json:"state" validate:"required,max=64,graphic"`
	Approval         string `json:"approval" validate:"required,max=64,graphic"`
	StartDate        string `json:"start_date" validate:"required,max=64,snow_time"`
	EndDate          string `json:"end_date" validate:"required,max=64,snow_time"`
	ShortDescription string `json:"short_description,omitempty" validate:"max=4000,multiline"`
	SysUpdatedOn     string `json:"sys_updated_on" validate:"required,max=64,snow_time"`
	// OnHold is ServiceNow's "On hold": true holds the change's windows
	// that have not opened, false releases them (issue #16).
	OnHold bool `json:"on_hold,omitempty"`
}

type patchingInput struct {
	SoftwareUpdateGroups []string `json:"software_update_groups" validate:"required,min=1,max=100,dive,update_group"`
	// Schedules nil (omitted or null) means every automatic and
	// manual_reboot schedule; an empty list is refused as ambiguous.
	Schedules []string `json:"schedules,omitempty" validate:"omitnil,min=1,max=1000,dive,required,max=255,graphic"`
	// Classification is normal (the default), critical or emergency;
	// Deadline, when given, replaces its default (docs/architecture.md §9.2).
	Classification string `json:"classification,omitempty" validate:"omitempty,oneof=normal critical emergency"`
	Deadline       string `json:"deadline,omitempty" validate:"omitempty,max=64,snow_time"`
	// ErrorBudget is the change's own error budget: a JSON number of
	// failures (5) or a string share of devices ("10%"); omitted means
	// AUTOPATCH_ERROR_BUDGET. Checked by rollout.FromJSON.
	ErrorBudget json.RawMessage `json:"error_budget,omitempty"`
}

// scheduleLookup returns those of names that are not active schedules.
type scheduleLookup func(ctx context.Context, names []string) ([]string, error)

// parseChange decodes and validates a change body. A refusal is an
// *APIError (400); err is for failures to look schedules up.
func parseChange(ctx context.Context, raw []byte, known scheduleLookup) (*changeWebhook, store.Change, *APIError, error) {
	var req changeWebhook
	if apiErr := decodeJSON(raw, &req); apiErr != nil {
		return nil, store.Change{}, apiErr, nil
	}
	var p problems
	p.check(&req)
	var c store.Change
	if req.Change != nil {
		start, errStart := parseTime(req.Change.StartDate)
		end, errEnd := parseTime(req.Change.EndDate)
		if errStart == nil && errEnd == nil && !end.After(start) {
			p.add("change.end_date", "must be after change.start_date")
		}
		updated, _ := parseTime(req.Change.SysUpdatedOn)
		c = store.Change{
			Number: req.Change.Number, SysID: req.Change.SysID,
			State: req.Change.State, Approval: req.Change.Approval,
			Start: start, End: end,
			ShortDescription: req.Change.ShortDescription,
			SysUpdatedOn:     updated,
		}
	}
	if req.Patching != nil {
		p.duplicates("patching.software_update_groups", req.Patching.SoftwareUpdateGroups, strings.ToLower)
		p.duplicates("patching.schedules", req.Patching.Schedules, nil)
		if err := p.knownSchedules(ctx, "patching.schedules", req.Patching.Schedules, known); err != nil {
			return nil, store.Change{}, nil, err
		}
		c.UpdateGroups, c.Schedules = req.Patching.SoftwareUpdateGroups, req.Patching.Schedules
		c.Classification = req.Patching.Classification
		if c.Classification == "" {
			c.Classification = string(deadline.Normal)
		}
		if req.Patching.Deadline != "" {
			if dl, err := parseTime(req.Patching.Deadline); err == nil {
				c.Deadline = &dl
				if !c.Start.IsZero() && !dl.After(c.Start) {
					p.add("patching.deadline", "must be after change.start_date (%s): nothing can be patched by a deadline that comes before the change starts",
						c.Start.Format(snowTimeLayout))
				}
			}
		}
		if raw := req.Patching.ErrorBudget; len(raw) > 0 && string(raw) != "null" {
			if b, err := rollout.FromJSON(raw); err != nil {
				p.add("patching.error_budget", "%s", err)
			} else {
				c.ErrorBudget = b.String()
			}
		}
	}
	if req.Change != nil {
		c.OnHold = req.Change.OnHold
	}
	if apiErr := p.err(); apiErr != nil {
		return nil, store.Change{}, apiErr, nil
	}
	return &req, c, nil, nil
}

func (w *webhooks) change(c echo.Context) error {
	ctx := c.Request().Context()
	raw, _ := c.Get(rawBodyKey).([]byte)
	req, ch, apiErr, err := parseChange(ctx, raw, w.unknownSchedules)
	if err := w.refused(store.EventChange, apiErr, err); err != nil {
		return err
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("handlers: encode change payload: %w", err)
	}
	ev := store.Event{
		ID: uuid.New(), Kind: store.EventChange, EventID: req.EventID,
		RecordNumber: ch.Number, RecordSysID: ch.SysID, SysUpdatedOn: ch.SysUpdatedOn,
		Payload: payload,
	}
	return w.ingest(c, ingest.Delivery{Event: ev, Change: &ch})
}

// --- schedule request -------------------------------------------------------

// scheduleRequestWebhook is the schedule-request body (docs/architecture.md §4.3),
// with ServiceNow's request_item.sys_updated_on as an optional extra.
type scheduleRequestWebhook struct {
	EventID      string              `json:"event_id,omitempty" validate:"max=255,graphic"`
	RequestItem  *requestItemInput   `json:"request_item" validate:"required"`
	RequestedFor string              `json:"requested_for" validate:"required,max=255,graphic"`
	Schedule     string              `json:"schedule" validate:"required,max=255,graphic"`
	Devices      []requestedDeviceIn `json:"devices" validate:"required,min=1,max=5000,dive"`
}

type requestItemInput struct {
	Number       string `json:"number" validate:"required,max=40,ritm_number"`
	SysID        string `json:"sys_id" validate:"required,sys_id"`
	SysUpdatedOn string `json:"sys_updated_on,omitempty" validate:"omitempty,max=64,snow_time"`
}

type requestedDeviceIn struct {
	Name    string `json:"name" validate:"required,device_name"`
	Service string `json:"service" validate:"required,max=255,graphic"`
	Tier    string `json:"tier" validate:"required,oneof=backend middle frontend"`
}

// parseScheduleRequest decodes and validates a schedule-request body.
func parseScheduleRequest(ctx context.Context, raw []byte, known scheduleLookup) (store.ScheduleRequest, *APIError, error) {
	var req scheduleRequestWebhook
	if apiErr := decodeJSON(raw, &req); apiErr != nil {
		return store.ScheduleRequest{}, apiErr, nil
	}
	var p problems
	p.check(&req)
	names := make([]string, len(req.Devices))
	for i, d := range req.Devices {
		names[i] = d.Name
	}
	p.duplicates("devices", names, strings.ToLower)
	if req.Schedule != "" {
		unknown, err := known(ctx, []string{req.Schedule})
		if err != nil {
			return store.ScheduleRequest{}, nil, err
		}
		if len(unknown) > 0 {
			p.add("schedule", "must name an active schedule; %q is not one (GET /api/v1/schedules lists them)", req.Schedule)
		}
	}
	if apiErr := p.err(); apiErr != nil {
		return store.ScheduleRequest{}, apiErr, nil
	}
	out := store.ScheduleRequest{
		EventID: req.EventID,
		RequestItem: store.RequestItem{
			Number: req.RequestItem.Number,
			SysID:  req.RequestItem.SysID,
		},
		RequestedFor: req.RequestedFor,
		Schedule:     req.Schedule,
		Devices:      make([]store.RequestedDevice, len(req.Devices)),
	}
	if req.RequestItem.SysUpdatedOn != "" {
		t, _ := parseTime(req.RequestItem.SysUpdatedOn)
		out.RequestItem.SysUpdatedOn = &t
	}
	for i, d := range req.Devices {
		out.Devices[i] = store.RequestedDevice(d)
	}
	return out, nil, nil
}

func (w *webhooks) scheduleRequest(c echo.Context) error {
	ctx := c.Request().Context()
	raw, _ := c.Get(rawBodyKey).([]byte)
	req, apiErr, err := parseScheduleRequest(ctx, raw, w.unknownSchedules)
	if err := w.refused(store.EventScheduleRequest, apiErr, err); err != nil {
		return err
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("handlers: encode schedule request payload: %w", err)
	}
	ev := store.Event{
		ID: uuid.New(), Kind: store.EventScheduleRequest, EventID: req.EventID,
		RecordNumber: req.RequestItem.Number, RecordSysID: req.RequestItem.SysID,
		Payload: payload,
	}
	if req.RequestItem.SysUpdatedOn != nil {
		ev.SysUpdatedOn = *req.RequestItem.SysUpdatedOn
	}
	if ev.EventID == "" {
		// Without a delivery id, the same request is the same content:
		// the hash of the validated request (unknown fields and
		// formatting left out) is the deduplication key.
		sum := sha256.Sum256(payload)
		ev.EventID = "sha256:" + hex.EncodeToString(sum[:])
	}
	return w.ingest(c, ingest.Delivery{Event: ev})
}

// --- shared -----------------------------------------------------------------

// refused counts and returns a refusal from parsing, or nil.
func (w *webhooks) refused(kind string, apiErr *APIError, err error) error {
	switch {
	case err != nil:
		w.metrics.observe(kind, "error")
		return err
	case apiErr != nil:
		w.metrics.observe(kind, apiErr.Code)
		return apiErr
	}
	return nil
}

// ingest records a delivery and enqueues its jobs (package ingest) and
// answers: 202 accepted, 200 duplicate or stale, 400 when a change
// contradicts the one autopatch knows.
func (w *webhooks) ingest(c echo.Context, d ingest.Delivery) error {
	ctx := c.Request().Context()
	ev := d.Event
	res, err := w.ingester.Ingest(ctx, d)
	var mismatch *store.MismatchError
	if errors.As(err, &mismatch) {
		var p problems
		p.add("change."+mismatch.Field, "does not match the change autopatch knows (%s %s has %s %s)",
			d.Change.Number, d.Change.SysID, mismatch.Field, mismatch.Known)
		apiErr := p.err()
		w.metrics.observe(ev.Kind, apiErr.Code)
		return apiErr
	}
	if err != nil {
		w.metrics.observe(ev.Kind, "error")
		return fmt.Errorf("handlers: %s delivery for %s: %w", ev.Kind, ev.RecordNumber, err)
	}
	w.metrics.observe(ev.Kind, res.Status)
	w.logger.InfoContext(ctx, "webhook "+res.Status,
		"request_id", requestID(c), "kind", ev.Kind, "record", ev.RecordNumber,
		"id", res.ID, "event_id", ev.EventID, "jobs", res.Jobs)
	code := http.StatusOK
	if res.Status == store.OutcomeAccepted {
		code = http.StatusAccepted
	}
	return c.JSON(code, WebhookResponse{ID: res.ID, Status: res.Status})
}

func (w *webhooks) unknownSchedules(ctx context.Context, names []string) ([]string, error) {
	return store.UnknownSchedules(ctx, w.store.Pool, names)
}

// duplicates reports every element of values that repeats an earlier one
// (compared after norm, when given).
func (p *problems) duplicates(field string, values []string, norm func(string) string) {
	first := make(map[string]int, len(values))
	suffix := ""
	if field == "devices" {
		suffix = ".name"
	}
	for i, v := range values {
		if v == "" {
			continue
		}
		if norm != nil {
			v = norm(v)
		}
		if j, ok := first[v]; ok {
			note := ""
			if norm != nil {
				note = " (SCCM names are not case-sensitive)"
			}
			p.add(fmt.Sprintf("%s[%d]%s", field, i, suffix), "repeats %s[%d]%s%s", field, j, suffix, note)
			continue
		}
		first[v] = i
	}
}

// knownSchedules reports the names that are not active schedules.
func (p *problems) knownSchedules(ctx context.Context, field string, names []string, known scheduleLookup) error {
	if len(names) == 0 {
		return nil
	}
	unknown, err := known(ctx, names)
	if err != nil {
		return err
	}
	bad := make(map[string]bool, len(unknown))
	for _, n := range unknown {
		bad[n] = true
	}
	for i, n := range names {
		if n != "" && bad[n] {
			p.add(fmt.Sprintf("%s[%d]", field, i), "must name an active schedule; %q is not one (GET /api/v1/schedules lists them)", n)
		}
	}
	return nil
}

//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIDocument serves the OpenAPI 3 description of the webhooks and the
// read API.
func openAPIDocument(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openAPIYAML)
}
