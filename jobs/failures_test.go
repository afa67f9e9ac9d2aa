package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/scom/scomsim"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/servicenow/servicenowsim"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

// windowComputer is the seeded Windows Computer the window alerts go on.
const windowComputer = "SCCM01"

// failureOptions shape a harness for the failure tests.
type failureOptions struct {
	devices        []estate.SeedDevice // members of every schedule's collection
	stormThreshold int
	// wrapServiceNow, when set, wraps the real ServiceNow client.
	wrapServiceNow func(ServiceNow) ServiceNow
	// pool and schema, when set, are a tenant's (store.OpenSchema's pool,
	// migrated, and its schema): the harness runs as that tenant.
	pool   *pgxpool.Pool
	schema string
}

// newFailureHarness is newHarness with devices (see addMembers), SCOM on
// the estate's WinRM listener, the estate's own ServiceNow instance (so
// /state shows alerts, incidents and notes) and a one-second poll.
func newFailureHarness(t *testing.T, o failureOptions) *harness {
	t.Helper()
	ctx := context.Background()
	var logOut io.Writer = io.Discard
	if os.Getenv("AUTOPATCH_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := &harness{t: t, pool: o.pool}
	if h.pool == nil {
		h.pool = testdb.Pool(t)
	}

	seed := estate.Seed{UpdateGroups: []string{"2026-12 Servers", "2026-12 Office"}, Devices: []estate.SeedDevice{{Name: windowComputer}}}
	seed.Devices = append(seed.Devices, o.devices...)
	var err error
	h.est, err = estate.Start(ctx, estate.Options{Seed: seed})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.est.Close() })

	cfg := h.est.WinRMConfig()
	cfg.Timeout = 10 * time.Second
	runner, err := winrm.New(cfg, logger)
	require.NoError(t, err)
	h.sn = h.est.ServiceNow()
	snClient, err := servicenow.New(h.est.ServiceNowConfig(), nil, logger)
	require.NoError(t, err)
	var sn ServiceNow = snClient
	if o.wrapServiceNow != nil {
		sn = o.wrapServiceNow(snClient)
	}
	h.deps = &Deps{
		Pool: h.pool, Logger: logger, Schedules: &schedules.Current{},
		SCCM:           sccm.New(runner, "", logger),
		SCOM:           scom.New(runner, scom.Options{}, logger),
		ServiceNow:     sn,
		MinRemaining:   30 * time.Minute,
		PollInterval:   time.Second,
		StormThreshold: o.stormThreshold,
		WindowComputer: windowComputer,
		Incidents:      IncidentSettings{AssignmentGroup: "Server Patching", Urgency: 2, Impact: 3},
		Schema:         o.schema,
	}
	return h
}

// loadWithMembers puts schedules in force (see load) and makes the devices
// members of every schedule's collection.
func (h *harness) loadWithMembers(devices []estate.SeedDevice, scheduleEntries ...string) {
	h.t.Helper()
	h.load(scheduleEntries...)
	for _, s := range h.deps.Schedules.Get().All() {
		for _, d := range devices {
			require.NoError(h.t, h.est.SCCM().AddMember(s.Collection, d.Name))
		}
	}
}

// wireState reads GET /state from the estate's control server.
func (h *harness) wireState() estate.State {
	h.t.Helper()
	resp, err := http.Get(h.est.ControlURL() + "/state")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	var s estate.State
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

// failures returns the stored failures of a change.
func (h *harness) failures(number string) []store.Failure {
	h.t.Helper()
	fs, err := store.ChangeFailures(context.Background(), h.pool, []string{number})
	require.NoError(h.t, err)
	return fs
}

// settled reports whether every failure of a change has done every step
// it can do: alert raised (or impossible) and linked, incident opened,
// and both closed for a recovered device.
func settled(fs []store.Failure) bool {
	for _, f := range fs {
		if !f.Reported() {
			continue
		}
		if !f.AlertDone() || f.IncidentSysID == "" || (f.AlertID != "" && f.AlertTicket != f.IncidentNumber) {
			return false
		}
		if f.RecoveredAt != nil && f.State != store.FailureResolved {
			return false
		}
	}
	return len(fs) > 0
}

// historyRows counts a change's device result history.
func (h *harness) historyRows(number string) int {
	var n int
	require.NoError(h.t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM device_result_history r
		JOIN deployments d ON d.id = r.deployment_id WHERE d.change_number = $1`, number).Scan(&n))
	return n
}

func alertByKey(s estate.State, key string) []scomsim.AlertState {
	var out []scomsim.AlertState
	for _, a := range s.Alerts {
		if a.Key == key {
			out = append(out, a)
		}
	}
	return out
}

func incidentByCorrelation(s estate.State, id string) []servicenowsim.Incident {
	var out []servicenowsim.Incident
	for _, inc := range s.Incidents {
		if inc.CorrelationID == id {
			out = append(out, inc)
		}
	}
	return out
}

func notesOn(s estate.State, sysID string) string {
	var b strings.Builder
	for _, n := range s.WorkNotes {
		if n.SysID == sysID {
			b.WriteString(n.Text + "\n---\n")
		}
	}
	return b.String()
}

// TestFailuresReportedOnceLinkedAndResolved runs a window over devices with
// every outcome of the simulator, on two replicas, then polls ten times
// more: each failing device has exactly one alert and one incident, linked;
// the device that recovers has both closed; nothing else is raised.
func TestFailuresReportedOnceLinkedAndResolved(t *testing.T) {
	t.Parallel()
	notInSCOM := false
	devices := []estate.SeedDevice{
		{Name: "SQL01"},
		{Name: "SQL02", Outcome: "error 0x80240022"},
		{Name: "WEB01", Outcome: "silent"},
		{Name: "APP01", Outcome: "error 0x8024402C then success"},
		{Name: "APP02", Outcome: "in progress"},
		{Name: "LAB01", Outcome: "error 0x80070005", SCOM: &notInSCOM},
	}
	h := newFailureHarness(t, failureOptions{devices: devices})
	h.startClient()
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(8 * time.Second), now.Add(14 * time.Second)}
	h.loadWithMembers(devices, schedule("AUTO", "automatic", w))
	number, sysID := h.approve(now, now.Add(time.Hour), "AUTO")

	h.waitFor("deployments closed and final-polled", func() bool {
		var n int
		require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM deployments
			WHERE change_number = $1 AND state = 'closed' AND final_polled_at IS NOT NULL`, number).Scan(&n))
		return n == 2
	})
	h.waitFor("every failure reported, linked, and the recovered one resolved", func() bool { return settled(h.failures(number)) })

	// What the simulator's outcomes imply, device by device.
	type want struct {
		kind      string
		recovers  bool
		alert     bool
		severity  string
		errorCode string
	}
	expected := map[string]want{}
	for _, d := range devices {
		o, err := normalOutcome(d.Outcome)
		require.NoError(t, err)
		switch {
		case strings.HasPrefix(o, "error") && strings.HasSuffix(o, "then success"):
			expected[d.Name] = want{kind: store.FailureError, recovers: true, alert: d.InSCOM(), severity: "Critical", errorCode: hexCode(strings.Fields(o)[1])}
		case strings.HasPrefix(o, "error"):
			expected[d.Name] = want{kind: store.FailureError, alert: d.InSCOM(), severity: "Critical", errorCode: hexCode(strings.Fields(o)[1])}
		case o == "silent", o == "in progress":
			expected[d.Name] = want{kind: store.FailureNoStatus, alert: d.InSCOM(), severity: "Warning"}
		}
	}

	s := h.wireState()
	fs := h.failures(number)
	require.Len(t, fs, len(expected), "one failure per failing device: %+v", fs)
	require.Len(t, s.Incidents, len(expected), "one incident per failing device, no other")
	alerting := 0
	for _, e := range expected {
		if e.alert {
			alerting++
		}
	}
	require.Len(t, s.Alerts, alerting, "one alert per failing device SCOM monitors, no other")
	for _, f := range fs {
		e, ok := expected[f.Subject]
		require.True(t, ok, "unexpected failure for %s", f.Subject)
		require.Equal(t, e.kind, f.Kind, f.Subject)
		key := servicenow.CorrelationID(number, f.Subject)
		require.Equal(t, key, f.CorrelationID)

		incs := incidentByCorrelation(s, key)
		require.Len(t, incs, 1, "%s: one incident", f.Subject)
		inc := incs[0]
		require.Equal(t, f.IncidentNumber, inc.Number)
		require.Contains(t, inc.ShortDescription, f.Subject)
		require.Contains(t, inc.ShortDescription, number)
		require.Equal(t, "Server Patching", inc.AssignmentGroup)
		require.Equal(t, "2", inc.Urgency)
		require.Equal(t, "3", inc.Impact)
		require.Contains(t, inc.Description, "Patch - AUTO")
		require.Contains(t, inc.Description, "2026-12 Servers")
		require.Contains(t, inc.Description, w.start.UTC().Format(timeFormat))

		alerts := alertByKey(s, key)
		if !e.alert {
			require.Empty(t, alerts, "%s is not monitored by SCOM", f.Subject)
			require.Equal(t, store.AlertUnknownDevice, f.AlertOutcome)
		} else {
			require.Len(t, alerts, 1, "%s: one alert", f.Subject)
			require.Equal(t, inc.Number, alerts[0].TicketID, "%s: the alert carries its incident's number", f.Subject)
			require.Equal(t, e.severity, alerts[0].Severity, f.Subject)
			require.Equal(t, number, alerts[0].Change)
		}
		if e.errorCode != "" {
			require.Contains(t, inc.ShortDescription, e.errorCode)
			require.Contains(t, inc.Description, e.errorCode)
		}
		if e.recovers {
			require.Equal(t, store.FailureResolved, f.State, f.Subject)
			require.Equal(t, "6", inc.State, "%s: incident resolved", f.Subject)
			require.Equal(t, scom.ResolutionClosed, alerts[0].ResolutionState, "%s: alert closed", f.Subject)
			require.Contains(t, notesOn(s, inc.SysID), "reported success")
		} else {
			require.Equal(t, store.FailureOpen, f.State, f.Subject)
			require.Equal(t, "1", inc.State, "%s: incident still open", f.Subject)
			if e.alert {
				require.Equal(t, 0, alerts[0].ResolutionState, "%s: alert still open", f.Subject)
			}
		}
	}
	// The common codes are explained.
	sql02 := incidentByCorrelation(s, servicenow.CorrelationID(number, "SQL02"))[0]
	require.Contains(t, sql02.Description, "WU_E_ALL_UPDATES_FAILED")
	require.Contains(t, incidentByCorrelation(s, servicenow.CorrelationID(number, "APP01"))[0].Description, "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED")

	// History: a row per change of status, not per poll.
	deps, err := store.ChangeDeployments(context.Background(), h.pool, number)
	require.NoError(t, err)
	for _, d := range deps {
		for device, wantRows := range map[string]int{"SQL02": 1, "APP01": 2, "SQL01": 1, "WEB01": 1} {
			hist, err := store.ResultHistory(context.Background(), h.pool, d.ID, device)
			require.NoError(t, err)
			require.Len(t, hist, wantRows, "%s in %s: %+v", device, d.Name, hist)
		}
	}
	calls := h.est.SCCM().CallsByTemplate()[sccm.DeploymentStatusTemplate]
	var pollJobs, instants int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT args->>'at') FROM river_job WHERE kind = 'poll_status'`).Scan(&pollJobs, &instants))
	require.Equal(t, instants, pollJobs, "one poll job per instant across both replicas")
	require.LessOrEqual(t, calls, pollJobs, "at most one SCCM status call per poll")
	require.GreaterOrEqual(t, calls, 2, "polled while the window was open, and once after")

	// Ten more polls, each a final read of the closed window: nothing new.
	before := struct{ scom, history, posts int }{h.est.SCOM().Calls(), h.historyRows(number), countRequests(h.sn, http.MethodPost)}
	for i := range 10 {
		_, err := h.pool.Exec(context.Background(), `UPDATE deployments SET final_polled_at = NULL WHERE change_number = $1`, number)
		require.NoError(t, err)
		h.insert(PollStatusArgs{At: time.Now().Add(time.Duration(i) * time.Millisecond)})
		h.waitFor("the extra poll", func() bool {
			var n int
			require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM deployments
				WHERE change_number = $1 AND final_polled_at IS NULL`, number).Scan(&n))
			return n == 0
		})
	}
	require.GreaterOrEqual(t, h.est.SCCM().CallsByTemplate()[sccm.DeploymentStatusTemplate], calls+10, "the ten polls read status")
	after := h.wireState()
	require.Equal(t, len(s.Alerts), len(after.Alerts))
	require.Equal(t, len(s.Incidents), len(after.Incidents))
	require.Equal(t, before.history, h.historyRows(number), "no status changed")
	require.Equal(t, before.posts, countRequests(h.sn, http.MethodPost), "no incident created")
	require.Equal(t, before.scom, h.est.SCOM().Calls(), "no SCOM call")
	require.Len(t, h.failures(number), len(expected))
	require.Contains(t, notesOn(after, sysID), "window CLOSED")
}

// hexCode writes "0x8024402c" as Windows Update logs do: 0x8024402C.
func hexCode(s string) string { return "0x" + strings.ToUpper(strings.TrimPrefix(s, "0x")) }

// normalOutcome normalises a seed outcome ("" is success).
func normalOutcome(s string) (string, error) {
	if s == "" {
		return "success", nil
	}
	return strings.ToLower(strings.TrimSpace(s)), nil
}

func countRequests(sn *servicenowsim.Server, method string) int {
	n := 0
	for _, r := range sn.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, "/incident") {
			n++
		}
	}
	return n
}

// crashingServiceNow makes the first CreateIncident of each correlation id
// fail after the incident was created, as a crash between creating it and
// recording it would.
type crashingServiceNow struct {
	ServiceNow
	mu      sync.Mutex
	crashed map[string]int
	calls   map[string]int
}

func (c *crashingServiceNow) CreateIncident(ctx context.Context, inc servicenow.Incident) (servicenow.Ref, error) {
	ref, err := c.ServiceNow.CreateIncident(ctx, inc)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[inc.CorrelationID]++
	if err == nil && c.crashed[inc.CorrelationID] == 0 {
		c.crashed[inc.CorrelationID]++
		return servicenow.Ref{}, errors.New("simulated crash after the incident was created")
	}
	return ref, err
}

// TestCrashBetweenIncidentAndRecord: the incident exists but autopatch did
// not record it (a lost response; a crash before the commit). The retry
// finds it by correlation id: no second incident.
func TestCrashBetweenIncidentAndRecord(t *testing.T) {
	t.Parallel()
	crash := &crashingServiceNow{crashed: map[string]int{}, calls: map[string]int{}}
	devices := []estate.SeedDevice{{Name: "SQL02", Outcome: "error 0x80240022"}, {Name: "SQL03", Outcome: "error 0x80070643"}}
	h := newFailureHarness(t, failureOptions{
		devices: devices,
		wrapServiceNow: func(sn ServiceNow) ServiceNow {
			crash.ServiceNow = sn
			return crash
		},
	})
	// The first incident POST takes effect but its answer is lost.
	h.sn.LoseNextResponses(http.MethodPost, 1)
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(8 * time.Second), now.Add(12 * time.Second)}
	h.loadWithMembers(devices, schedule("AUTO", "automatic", w))
	number, _ := h.approve(now, now.Add(time.Hour), "AUTO")
	h.waitFor("both failures reported", func() bool { fs := h.failures(number); return len(fs) == 2 && settled(fs) })

	s := h.wireState()
	require.Len(t, s.Incidents, 2, "one incident per device despite the lost answer and the crash")
	for _, device := range []string{"SQL02", "SQL03"} {
		key := servicenow.CorrelationID(number, device)
		require.Len(t, incidentByCorrelation(s, key), 1, device)
		require.Len(t, alertByKey(s, key), 1, device)
		crash.mu.Lock()
		// Created and crashed; the retry found it, by the look-up of its
		// chunk (failure_incidents.go) or by CreateIncident's own guard.
		require.GreaterOrEqual(t, crash.calls[key], 1, "%s: created", device)
		require.Equal(t, 1, crash.crashed[key], "%s: crashed", device)
		crash.mu.Unlock()
	}
	lost := 0
	for _, r := range h.sn.Requests() {
		if r.Method == http.MethodPost && r.Status == 0 {
			lost++
		}
	}
	require.Equal(t, 1, lost, "one answer was lost")
}

// TestStormGuard: more failures in one window than the threshold are one
// incident and one alert for the window, listing the devices.
func TestStormGuard(t *testing.T) {
	t.Parallel()
	failing := []string{"WEB01", "WEB02", "WEB03", "WEB04"}
	devices := []estate.SeedDevice{{Name: "WEB00"}}
	for _, d := range failing {
		devices = append(devices, estate.SeedDevice{Name: d, Outcome: "error 0x80244022"})
	}
	const threshold = 2
	h := newFailureHarness(t, failureOptions{devices: devices, stormThreshold: threshold})
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(8 * time.Second), now.Add(12 * time.Second)}
	h.loadWithMembers(devices, schedule("AUTO", "automatic", w))
	number, _ := h.approve(now, now.Add(time.Hour), "AUTO")
	h.waitFor("the storm reported", func() bool {
		var closed int
		require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM deployments
			WHERE change_number = $1 AND final_polled_at IS NOT NULL`, number).Scan(&closed))
		return closed == 2 && settled(h.failures(number))
	})

	s := h.wireState()
	require.Greater(t, len(failing), threshold)
	require.Len(t, s.Incidents, 1, "one incident for the window")
	require.Len(t, s.Alerts, 1, "one alert for the window")
	inc, alert := s.Incidents[0], s.Alerts[0]
	require.Contains(t, inc.ShortDescription, fmt.Sprintf("%d devices", len(failing)))
	for _, d := range failing {
		require.Contains(t, inc.Description, d)
	}
	require.NotContains(t, inc.Description, "WEB00")
	require.Contains(t, inc.Description, "WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL")
	require.Equal(t, inc.Number, alert.TicketID)
	require.Equal(t, windowComputer+".corp.example", alert.Computer)

	var storms, members int
	for _, f := range h.failures(number) {
		switch {
		case f.Kind == store.FailureStorm:
			storms++
			require.Equal(t, inc.CorrelationID, f.CorrelationID)
		case f.StormID != nil:
			members++
			require.Empty(t, f.IncidentNumber, "a storm member has no incident of its own")
		default:
			t.Fatalf("failure reported on its own in a storm: %+v", f)
		}
	}
	require.Equal(t, 1, storms)
	require.Equal(t, len(failing), members)
}

// TestMissedWindowReported: a missed window has one alert, one incident
// and notes on the change.
func TestMissedWindowReported(t *testing.T) {
	t.Parallel()
	devices := []estate.SeedDevice{{Name: "SQL01"}}
	h := newFailureHarness(t, failureOptions{devices: devices})
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(10 * time.Second), now.Add(18 * time.Second)}
	h.loadWithMembers(devices, schedule("AUTO", "automatic", w))
	number, sysID := h.approve(now, now.Add(time.Hour), "AUTO")
	h.waitFor("deployments created", func() bool { return h.states(number)["created"] == 2 })

	// SCCM is down from the start until too little of the window is left.
	h.est.SetWinRMDown(true)
	time.Sleep(time.Until(w.start.Add(6 * time.Second)))
	h.est.SetWinRMDown(false)

	h.waitFor("window missed", func() bool { return h.states(number)["missed"] == 2 })
	h.waitFor("the missed window reported", func() bool { return settled(h.failures(number)) })
	h.waitFor("the notes", func() bool { return strings.Contains(notesOn(h.wireState(), sysID), "incident INC") })

	s := h.wireState()
	require.Len(t, s.Incidents, 1, "one incident for the window, whose two deployments were missed")
	require.Len(t, s.Alerts, 1, "one alert for the window")
	inc := s.Incidents[0]
	require.Contains(t, inc.ShortDescription, "missed")
	require.Contains(t, inc.ShortDescription, "AUTO")
	require.Contains(t, inc.ShortDescription, w.start.UTC().Format(timeFormat))
	require.Contains(t, inc.Description, "2026-12 Servers")
	require.Contains(t, inc.Description, "2026-12 Office")
	require.Equal(t, inc.Number, s.Alerts[0].TicketID)
	notes := notesOn(s, sysID)
	require.Contains(t, notes, "window MISSED")
	require.Contains(t, notes, "incident "+inc.Number)
	fs := h.failures(number)
	require.Len(t, fs, 1)
	require.Equal(t, store.FailureMissedWindow, fs[0].Kind)
	for _, d := range h.deployments(number) {
		requireNeverEnabled(t, d)
	}
}

// TestPollStopsWhenNothingIsOpen: a poll with nothing open or owing its
// final read calls nothing and schedules nothing.
func TestPollStopsWhenNothingIsOpen(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, failureOptions{})
	h.startClient()
	now := time.Now()
	h.load(schedule("LATER", "automatic", window{now.Add(time.Hour), now.Add(2 * time.Hour)}))
	h.insert(PollStatusArgs{At: now})
	ctx := context.Background()
	h.waitFor("the poll done", func() bool {
		var state string
		require.NoError(t, h.pool.QueryRow(ctx, `SELECT state FROM river_job WHERE kind = 'poll_status'`).Scan(&state))
		return state == "completed"
	})
	var n int
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'poll_status'`).Scan(&n))
	require.Equal(t, 1, n, "no next poll")
	require.Zero(t, h.est.SCCM().CallsByTemplate()[sccm.DeploymentStatusTemplate])
}

func TestVerdict(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 12, 2, 0, 0, 0, time.UTC)
	open := store.Deployment{ID: 1, State: store.DeploymentOpen, WindowStart: start, WindowEnd: start.Add(4 * time.Hour), CloseAt: start.Add(4 * time.Hour)}
	closed := open
	closed.ID, closed.State = 2, store.DeploymentClosed
	canceled := closed
	canceled.ID, canceled.CloseAt = 3, start.Add(time.Hour) // closed early
	row := func(d store.Deployment, st sccm.StatusType) seenRow {
		return seenRow{dep: d, status: sccm.DeviceStatus{Type: st}}
	}
	for _, tt := range []struct {
		name string
		rows []seenRow
		want verdict
	}{
		{"ErrorWhileOpen", []seenRow{row(open, sccm.StatusError)}, failing},
		{"ErrorInOneDeployment", []seenRow{row(open, sccm.StatusSuccess), row(open, sccm.StatusError)}, failing},
		{"UnknownWhileOpen", []seenRow{row(open, sccm.StatusUnknown)}, undecided},
		{"InProgressWhileOpen", []seenRow{row(open, sccm.StatusInProgress)}, undecided},
		{"UnknownAtTheEnd", []seenRow{row(closed, sccm.StatusUnknown)}, silent},
		{"InProgressAtTheEnd", []seenRow{row(closed, sccm.StatusSuccess), row(closed, sccm.StatusInProgress)}, silent},
		{"UnknownWhenClosedEarly", []seenRow{row(canceled, sccm.StatusUnknown)}, undecided},
		{"ErrorAtTheEnd", []seenRow{row(closed, sccm.StatusUnknown), row(closed, sccm.StatusError)}, failing},
		{"SuccessEverywhere", []seenRow{row(open, sccm.StatusSuccess), row(closed, sccm.StatusSuccess)}, succeeded},
		{"SuccessAndPending", []seenRow{row(open, sccm.StatusSuccess), row(open, sccm.StatusUnknown)}, undecided},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, _ := (&seen{rows: tt.rows}).verdict()
			require.Equal(t, tt.want, got)
		})
	}
}

func TestNextPollIsOneGridForEveryone(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 12, 12, 2, 3, 17, 0, time.UTC)
	for _, every := range []time.Duration{time.Second, 5 * time.Minute, 7 * time.Minute} {
		first := nextPoll(base, every)
		require.True(t, first.After(base), every)
		require.LessOrEqual(t, first.Sub(base), every, every)
		// Any moment before that instant asks for the same one, whatever
		// its zone: replicas and windows share one poll.
		for _, d := range []time.Duration{0, every / 3, first.Sub(base) - time.Nanosecond} {
			at := base.Add(d).In(time.FixedZone("X", 5*3600+1800))
			require.True(t, nextPoll(at, every).Equal(first), "%s +%s", every, d)
		}
		require.True(t, nextPoll(first, every).Equal(first.Add(every)), "the instant itself asks for the next")
	}
}

func TestErrorTexts(t *testing.T) {
	t.Parallel()
	// The codes issue #7 names, with their Windows SDK names.
	for c, name := range map[int64]string{
		0x80240022: "WU_E_ALL_UPDATES_FAILED",
		0x8024402C: "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED",
		0x80070005: "E_ACCESSDENIED",
		0x80240017: "WU_E_NOT_APPLICABLE",
		0x8024001E: "WU_E_SERVICE_STOP",
		0x80244022: "WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL",
		0x80070643: "ERROR_INSTALL_FAILURE",
		0x800F0922: "CBS_E_INSTALLERS_FAILED",
	} {
		hex := fmt.Sprintf("0x%08X", uint32(c))
		require.Equal(t, hex+" "+name, errorName(c))
		require.True(t, strings.HasPrefix(errorText(c), hex+" "+name+": "), errorText(c))
		// SCCM may hand the HRESULT out signed.
		require.Equal(t, errorName(c), errorName(int64(int32(uint32(c)))))
	}
	require.Contains(t, errorText(0x80001234), "0x80001234 (not a common Windows Update code")
	require.Equal(t, "0x80001234", errorName(0x80001234))
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxShortDescription+5)
	got := truncate(long, maxShortDescription)
	require.Len(t, []rune(got), maxShortDescription)
	require.True(t, strings.HasSuffix(got, "…"))
	require.Equal(t, "short", truncate("short", maxShortDescription))
}

// TestSweepFinishesStalledFailures: a failure whose jobs were lost (here:
// never inserted) is reported by the sweep.
func TestSweepFinishesStalledFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newFailureHarness(t, failureOptions{devices: []estate.SeedDevice{{Name: "SQL02", Outcome: "error 0x80240022"}}})
	number, sysID := "CHG0039999", fmt.Sprintf("%032x", 0xbadc0de)
	require.NoError(t, h.sn.AddRecord("change_request", sysID, number))
	_, err := h.pool.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups)
		VALUES ($1, $2, 'scheduled', 'approved', now(), now() + interval '1 hour', '{"2026-12 Servers"}')`, number, sysID)
	require.NoError(t, err)
	key := servicenow.CorrelationID(number, "SQL02")
	_, err = h.pool.Exec(ctx, `INSERT INTO failures (change_number, subject, kind, error_code, correlation_id, alert_computer, updated_at)
		VALUES ($1, 'SQL02', 'error', $2, $3, 'SQL02', now() - interval '10 minutes')`, number, int64(0x80240022), key)
	require.NoError(t, err)

	h.startClient() // the sweep runs on start
	h.waitFor("the stalled failure reported", func() bool { return settled(h.failures(number)) })
	s := h.wireState()
	require.Len(t, incidentByCorrelation(s, key), 1)
	alerts := alertByKey(s, key)
	require.Len(t, alerts, 1)
	require.Equal(t, incidentByCorrelation(s, key)[0].Number, alerts[0].TicketID)
}
