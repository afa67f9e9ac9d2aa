package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/deadline"
	"github.com/autopatch/autopatch/internal/ingest"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

// PathDeferralWebhook receives approved deferrals (docs/architecture.md §9.2).
const PathDeferralWebhook = "/webhooks/servicenow/deferral"

// deferralWebhook is the deferral body (docs/architecture.md §9.2).
type deferralWebhook struct {
	EventID     string            `json:"event_id,omitempty" validate:"max=255,graphic"`
	RequestItem *requestItemInput `json:"request_item" validate:"required"`
	Change      string            `json:"change" validate:"required,max=40,change_number"`
	Devices     []string          `json:"devices" validate:"required,min=1,max=5000,dive,device_name"`
	Until       string            `json:"until" validate:"required,max=64,snow_time"`
	Reason      string            `json:"reason" validate:"required,max=4000,multiline"`
	ApprovedBy  string            `json:"approved_by" validate:"required,max=255,graphic"`
}

// deferralTarget is what a deferral is checked against: the change, its
// deadline, the devices in it (lower-case name → name) and those already
// forced (lower-case name → when).
type deferralTarget struct {
	change   store.ChangeRow
	deadline time.Time
	members  map[string]string
	forced   map[string]time.Time
}

// deferralLookup finds the target of a deferral; store.ErrNotFound for an
// unknown change.
type deferralLookup func(ctx context.Context, change string) (deferralTarget, error)

// parseDeferral decodes and validates a deferral body: the change must be
// known, every device in it, and until at most deadline.MaxDeferral after
// the devices' deadline (and after it: a deferral to before the deadline
// moves nothing).
func parseDeferral(ctx context.Context, raw []byte, find deferralLookup) (*deferralWebhook, store.Deferral, *APIError, error) {
	var req deferralWebhook
	if apiErr := decodeJSON(raw, &req); apiErr != nil {
		return nil, store.Deferral{}, apiErr, nil
	}
	var p problems
	p.check(&req)
	// Not p.duplicates: these devices are plain names, not {name, …}.
	seen := map[string]int{}
	for i, name := range req.Devices {
		if j, ok := seen[strings.ToLower(name)]; ok && name != "" {
			p.add(fmt.Sprintf("devices[%d]", i), "repeats devices[%d] (SCCM names are not case-sensitive)", j)
			continue
		}
		seen[strings.ToLower(name)] = i
	}
	if apiErr := p.err(); apiErr != nil {
		return nil, store.Deferral{}, apiErr, nil
	}
	target, err := find(ctx, req.Change)
	if errors.Is(err, store.ErrNotFound) {
		p.add("change", "must name a change autopatch knows; %s is not one", req.Change)
		return nil, store.Deferral{}, p.err(), nil
	}
	if err != nil {
		return nil, store.Deferral{}, nil, err
	}
	for i, name := range req.Devices {
		if _, ok := target.members[strings.ToLower(name)]; !ok {
			p.add(fmt.Sprintf("devices[%d]", i), "must be a device in change %s; %s is not in its plan", req.Change, name)
		}
	}
	until, _ := parseTime(req.Until)
	switch {
	case !deadline.DeferralAllowed(target.deadline, until):
		p.add("until", "must be at most 7 days after the devices' deadline %s UTC (until %s UTC)",
			target.deadline.UTC().Format(snowTimeLayout), target.deadline.Add(deadline.MaxDeferral).UTC().Format(snowTimeLayout))
	case !until.After(target.deadline):
		p.add("until", "must be after the devices' deadline %s UTC: a deferral to before it moves nothing",
			target.deadline.UTC().Format(snowTimeLayout))
	}
	if apiErr := p.err(); apiErr != nil {
		return nil, store.Deferral{}, apiErr, nil
	}
	d := store.Deferral{
		Change: target.change.Number, ChangeSysID: target.change.SysID,
		Devices: req.Devices, Until: until, Reason: req.Reason, ApprovedBy: req.ApprovedBy,
		RequestItem: store.RequestItem{Number: req.RequestItem.Number, SysID: req.RequestItem.SysID},
	}
	for _, name := range req.Devices {
		if at, ok := target.forced[strings.ToLower(name)]; ok {
			if d.ForcedAt == nil {
				d.ForcedAt = map[string]time.Time{}
			}
			d.ForcedAt[strings.ToLower(name)] = at
		}
	}
	return &req, d, nil, nil
}

// findDeferralTarget reads a deferral's target: the change, its deadline,
// the devices of its ledger (the devices in scope of its latest plan and
// any SCCM reported) and the forced ones.
func (w *webhooks) findDeferralTarget(ctx context.Context, number string) (deferralTarget, error) {
	c, err := store.GetChange(ctx, w.store.Pool, number)
	if err != nil {
		return deferralTarget{}, err
	}
	l, err := ledger.ForChange(ctx, w.store.Pool, number, w.now(), w.ledger)
	if err != nil {
		return deferralTarget{}, err
	}
	t := deferralTarget{change: c, deadline: w.ledger.Deadline(c), members: map[string]string{}}
	for _, d := range l.Devices {
		t.members[strings.ToLower(d.Device)] = d.Device
	}
	if t.forced, err = store.ForcedAt(ctx, w.store.Pool, number); err != nil {
		return deferralTarget{}, err
	}
	return t, nil
}

// deferral records an approved deferral and enqueues its work notes, in
// one transaction: 202, or 200 for a duplicate. A deferral naming devices
// that were already forced is recorded too, and answered 409 with when
// each was forced.
func (w *webhooks) deferral(c echo.Context) error {
	ctx := c.Request().Context()
	raw, _ := c.Get(rawBodyKey).([]byte)
	req, d, apiErr, err := parseDeferral(ctx, raw, w.findDeferralTarget)
	if err := w.refused(store.EventDeferral, apiErr, err); err != nil {
		return err
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("handlers: encode deferral payload: %w", err)
	}
	ev := store.Event{
		ID: uuid.New(), Kind: store.EventDeferral, EventID: req.EventID,
		RecordNumber: req.RequestItem.Number, RecordSysID: req.RequestItem.SysID,
		Payload: payload,
	}
	if ev.EventID == "" {
		// As for schedule requests: the same deferral is the same content.
		sum := sha256.Sum256(payload)
		ev.EventID = "sha256:" + hex.EncodeToString(sum[:])
	}
	res, err := w.ingester.Ingest(ctx, ingest.Delivery{Event: ev, Deferral: &d})
	if err != nil {
		w.metrics.observe(ev.Kind, "error")
		return fmt.Errorf("handlers: deferral delivery for %s: %w", d.Change, err)
	}
	w.logger.InfoContext(ctx, "webhook "+res.Status,
		"request_id", requestID(c), "kind", ev.Kind, "record", ev.RecordNumber, "change", d.Change,
		"id", res.ID, "event_id", ev.EventID, "jobs", res.Jobs, "forced", len(d.ForcedAt))
	if res.Status == store.OutcomeAccepted && len(d.ForcedAt) > 0 {
		w.metrics.observe(ev.Kind, "already_forced")
		conflict := &APIError{Status: http.StatusConflict, Code: "already_forced",
			Message: fmt.Sprintf("recorded as %s, but %d device(s) were forced before the deferral arrived: they are not deferred", res.ID, len(d.ForcedAt))}
		for i, name := range d.Devices {
			if at, ok := d.ForcedAt[strings.ToLower(name)]; ok {
				conflict.Details = append(conflict.Details, FieldError{Field: fmt.Sprintf("devices[%d]", i),
					Message: "was forced at " + at.UTC().Format(time.RFC3339)})
			}
		}
		return conflict
	}
	w.metrics.observe(ev.Kind, res.Status)
	code := http.StatusOK
	if res.Status == store.OutcomeAccepted {
		code = http.StatusAccepted
	}
	return c.JSON(code, WebhookResponse{ID: res.ID, Status: res.Status})
}
