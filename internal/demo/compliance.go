package demo

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/ledger"
)

// The compliance step (issue #14): the ledger of CHG0030001, read through
// GET /api/v1/compliance before its windows (every device pending) and
// after the last one (every outcome the seed's devices lead to), in JSON
// and CSV, with the metrics and the summary note.

// ledgerSeen is what the demo saw of the ledger.
type ledgerSeen struct {
	before, after ledger.Ledger
	csvRows       [][]string
	metrics       string
	outcomes      map[compliance.Outcome][]string // every outcome any read showed, with its devices
}

func (l *ledgerSeen) observe(led ledger.Ledger) {
	if l.outcomes == nil {
		l.outcomes = map[compliance.Outcome][]string{}
	}
	for _, dv := range led.Devices {
		if !slices.Contains(l.outcomes[dv.Outcome], dv.Device) {
			l.outcomes[dv.Outcome] = append(l.outcomes[dv.Outcome], dv.Device)
		}
	}
}

// ledgerBefore reads the ledger once the change is planned and the
// pre-flight has read its members' clients, before any window opens.
func (d *run) ledgerBefore(ctx context.Context, number, sysID string) error {
	dbStart, _ := d.window("DB")
	if err := d.waitFor(ctx, dbStart, "the client pre-flight noted on "+number, func(s estate.State) bool {
		return strings.Contains(strings.Join(notesTexts(s, sysID), "\n"), "client pre-flight")
	}); err != nil {
		return err
	}
	if err := d.api("/api/v1/compliance?change="+number, &d.ledger.before); err != nil {
		return err
	}
	d.ledger.observe(d.ledger.before)
	d.tl.line("DEMO", "GET /api/v1/compliance?change=%s before the windows: %s", number, outcomeCounts(d.ledger.before))
	return nil
}

// ledgerAfter waits for the summary note and the manual devices' verdict,
// then reads the ledger as JSON and CSV, and the metrics.
func (d *run) ledgerAfter(ctx context.Context, number, sysID string) error {
	if err := d.waitFor(ctx, time.Now().Add(30*time.Second), "the compliance summary noted on "+number, func(s estate.State) bool {
		return strings.Contains(strings.Join(notesTexts(s, sysID), "\n"), "autopatch: compliance of "+number)
	}); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := d.api("/api/v1/compliance?change="+number, &d.ledger.after); err != nil {
			return err
		}
		if d.ledger.after.Summary.ByOutcome[compliance.ManualNoncompliant] > 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	d.ledger.observe(d.ledger.after)
	raw, err := d.get("/api/v1/compliance?change=" + number + "&format=csv")
	if err != nil {
		return err
	}
	if d.ledger.csvRows, err = csv.NewReader(bytes.NewReader(raw)).ReadAll(); err != nil {
		return fmt.Errorf("compliance CSV: %w", err)
	}
	metrics, err := d.get("/metrics")
	if err != nil {
		return err
	}
	d.ledger.metrics = string(metrics)

	d.tl.line("DEMO", "GET /api/v1/compliance?change=%s after the last window:", number)
	var b strings.Builder
	if err := ledger.WriteTable(&b, d.ledger.after); err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		d.tl.line("DEMO", "  %s", l)
	}
	return nil
}

// checkLedger adds the compliance expectations.
func (d *run) checkLedger(expect func(bool, string, ...any)) {
	l := d.ledger
	pending := len(l.before.Devices) > 0
	for _, dv := range l.before.Devices {
		pending = pending && (dv.Outcome == compliance.Pending || dv.Outcome == compliance.ClientInactive)
	}
	expect(pending, "before the windows every device is pending, but the inactive client (%s)", outcomeCounts(l.before))
	for _, o := range compliance.Outcomes {
		if o == compliance.Deferred || o == compliance.Forced {
			continue
		}
		expect(len(l.outcomes[o]) > 0, "a device reached %s (%s)", o, strings.Join(l.outcomes[o], ", "))
	}
	agree := len(l.csvRows) == len(l.after.Devices)+1
	col := func(name string) int { return slices.Index(ledger.CSVHeader, name) }
	for i, dv := range l.after.Devices {
		row := l.csvRows[i+1]
		agree = agree && row[col("device")] == dv.Device && row[col("outcome")] == string(dv.Outcome) && row[col("evidence")] == dv.Evidence
	}
	expect(agree, "the CSV lists the same %d devices, outcomes and evidence as the JSON", len(l.after.Devices))
	for _, series := range []string{"autopatch_compliance_devices{cycle=", "autopatch_patched_outside_window_total ", "autopatch_patched_by_deadline_ratio{cycle="} {
		expect(strings.Contains(l.metrics, series), "/metrics has %s…", strings.TrimSpace(series))
	}
	expect(l.after.EvidenceAt != nil, "the ledger says how old its evidence is (evidence_at %v)", l.after.EvidenceAt)
}

func outcomeCounts(l ledger.Ledger) string {
	var parts []string
	for _, o := range compliance.Outcomes {
		if n := l.Summary.ByOutcome[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", o, n))
		}
	}
	return strings.Join(parts, ", ")
}

// get is a GET with the API token, returning the body.
func (d *run) get(path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, d.apiURL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.est.APIToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b, err
}

// forcedChange is the critical change whose device the demo sees forced;
// forcedCollection the collection autopatch manages for forcing.
const (
	forcedChange     = "CHG0030004"
	forcedCollection = "Patch - Demo - Forced"
)

// forcedAfter waits until the ledger of the critical change shows its
// failed device forced, with the forced deployment's result.
func (d *run) forcedAfter(ctx context.Context, number string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := d.api("/api/v1/compliance?change="+number, &d.forced); err != nil {
			return err
		}
		done := false
		for _, dv := range d.forced.Devices {
			done = done || (dv.Outcome == compliance.Forced && dv.ForcedResult != "" && dv.ForcedResult != "running")
		}
		if done || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	d.tl.line("DEMO", "GET /api/v1/compliance?change=%s after its deadline:", number)
	for _, dv := range d.forced.Devices {
		d.tl.line("DEMO", "  %-10s %-22s %s", dv.Device, dv.Outcome, dv.Evidence)
	}
	return nil
}

// checkForced adds the forcing expectations: INT-SQL01, failed in the DB
// window of the critical change, was forced at its deadline, failed again
// and got one incident; the forced deployments ran one wave and were left
// disabled.
func (d *run) checkForced(s estate.State, expect func(bool, string, ...any)) {
	var got ledger.Device
	for _, dv := range d.forced.Devices {
		if dv.Device == "INT-SQL01" {
			got = dv
		}
	}
	expect(got.Outcome == compliance.Forced && got.ForcedResult == "failed" && got.ForcedAt != nil && !got.ForcedAt.Before(got.Deadline),
		"%s: INT-SQL01 failed in its window and was forced after its deadline (outcome %s, result %q)", forcedChange, got.Outcome, got.ForcedResult)
	incident := false
	for _, in := range s.Incidents {
		incident = incident || in.CorrelationID == "autopatch:"+forcedChange+":forced:INT-SQL01"
	}
	expect(incident, "%s: an incident for INT-SQL01's failed forced installation", forcedChange)
	n, ok := 0, true
	for _, dp := range s.Deployments {
		if strings.HasPrefix(dp.Name, "AP-"+forcedChange+"-(forced)-") {
			n++
			ok = ok && dp.Collection == forcedCollection && !dp.Enabled && len(dp.Events) > 0 && !dp.Events[len(dp.Events)-1].Enabled
		}
	}
	expect(n == 1 && ok, "%s: one forced deployment on %q, enabled for its wave and left disabled", forcedChange, forcedCollection)
}
