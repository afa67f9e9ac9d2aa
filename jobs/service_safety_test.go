package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/internal/store"
)

// safetySchedules are four automatic schedules, hours ahead so that no
// window opens while a test runs:
//
//	A +2h–+4h   B +3h–+5h (overlaps A)   C +6h–+8h   D +9h–+10h
func safetySchedules(now time.Time) []string {
	at := func(h float64) time.Time { return now.Add(time.Duration(h * float64(time.Hour))) }
	return []string{
		schedule("A", "automatic", window{at(2), at(4)}),
		schedule("B", "automatic", window{at(3), at(5)}),
		schedule("C", "automatic", window{at(6), at(8)}),
		schedule("D", "automatic", window{at(9), at(10)}),
	}
}

var ritms atomic.Int64

// request records a schedule request as the webhook does and asks for its
// job; it returns the RITM's sys_id.
func (h *harness) request(schedule string, devices ...store.RequestedDevice) (number, sysID string) {
	h.t.Helper()
	n := ritms.Add(1)
	number, sysID = fmt.Sprintf("RITM%07d", 10000+n), fmt.Sprintf("%032x", 0xa11ce000+n)
	require.NoError(h.t, h.sn.AddRecord("sc_req_item", sysID, number))
	payload, err := json.Marshal(store.ScheduleRequest{
		RequestItem: store.RequestItem{Number: number, SysID: sysID}, RequestedFor: "jane.doe",
		Schedule: schedule, Devices: devices,
	})
	require.NoError(h.t, err)
	id := uuid.New()
	require.NoError(h.t, pgx.BeginFunc(context.Background(), h.pool, func(tx pgx.Tx) error {
		return store.WriteDeliveries(context.Background(), tx, []store.Event{{ID: id, Kind: store.EventScheduleRequest,
			RecordNumber: number, RecordSysID: sysID, Payload: payload}}, []string{store.OutcomeAccepted}, nil)
	}))
	h.insert(AssignDevicesArgs{EventID: id})
	return number, sysID
}

func (h *harness) addDevices(names ...string) {
	h.t.Helper()
	for _, n := range names {
		_, err := h.est.SCCM().AddDevice(n, sccmsim.Outcome{})
		require.NoError(h.t, err)
	}
}

// outcomes returns device → outcome (and detail) of a RITM's assignments.
func (h *harness) outcomes(ritm string) map[string][2]string {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), `SELECT d.name, a.outcome, a.detail FROM device_assignments a
		JOIN devices d ON d.id = a.device_id WHERE a.request_item = $1`, ritm)
	require.NoError(h.t, err)
	out := map[string][2]string{}
	for rows.Next() {
		var name, outcome, detail string
		require.NoError(h.t, rows.Scan(&name, &outcome, &detail))
		out[name] = [2]string{outcome, detail}
	}
	require.NoError(h.t, rows.Err())
	return out
}

// collectionOf returns the simulator's collections that hold device.
func (h *harness) collectionOf(device string) []string {
	var out []string
	for _, c := range h.est.State().Collections {
		for _, m := range c.Members {
			if strings.EqualFold(m, device) {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

func (h *harness) waitNote(sysID, text string) string {
	h.t.Helper()
	h.waitFor("a note with "+text, func() bool { return strings.Contains(h.notes(sysID), text) })
	return h.notes(sysID)
}

func dev(name, service, tier string) store.RequestedDevice {
	return store.RequestedDevice{Name: name, Service: service, Tier: tier}
}

// TestSafetyRequestRejected: under the default policy a request that would
// put two of two frontends down at once, or a backend after its frontend,
// is refused before any SCCM call, recorded as refused, and the RITM note
// says why and what to ask for instead.
func TestSafetyRequestRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := time.Now().Truncate(time.Minute)
	h.load(safetySchedules(now)...)
	h.addDevices("WEB01", "WEB02", "SQL01")
	h.startClient()

	first, firstSys := h.request("A", dev("WEB01", "Shop", "frontend"))
	h.waitNote(firstSys, "moved into the collection")
	require.Equal(t, "moved", h.outcomes(first)["WEB01"][0])
	calls := h.est.SCCM().CallsByTemplate()[sccm.SetMembershipTemplate]
	require.Equal(t, 1, calls)

	t.Run("Redundancy", func(t *testing.T) {
		number, sysID := h.request("B", dev("WEB02", "Shop", "frontend"))
		note := h.waitNote(sysID, "autopatch refused "+number)
		t.Log(note)
		require.Contains(t, note, "No device was moved")
		require.Contains(t, note, "Shop / frontend: 2 of its 2 devices would be in a window at once (at most 1 may be)")
		require.Contains(t, note, "devices: WEB01, WEB02")
		require.Contains(t, note, "A "+now.Add(2*time.Hour).UTC().Format("Mon 2006-01-02 15:04"))
		require.Contains(t, note, "B "+now.Add(3*time.Hour).UTC().Format("Mon 2006-01-02 15:04"))
		// C and D do not overlap A; checked by hand from the schedules.
		require.Contains(t, note, "Schedules that would satisfy the rules for all these devices: C, D.")
		got := h.outcomes(number)["WEB02"]
		require.Equal(t, "refused", got[0])
		require.Contains(t, got[1], "service safety: Shop / frontend")
		require.Empty(t, h.collectionOf("WEB02"), "no collection change")
	})

	t.Run("TierOrder", func(t *testing.T) {
		number, sysID := h.request("D", dev("SQL01", "Shop", "backend"))
		note := h.waitNote(sysID, "autopatch refused "+number)
		require.Contains(t, note, "Shop: frontend would patch before backend has finished")
		require.Contains(t, note, "devices: SQL01, WEB01")
		// Every schedule ends after A (the frontend's) starts.
		require.Contains(t, note, "No single schedule of the same kind satisfies the rules")
		require.Equal(t, "refused", h.outcomes(number)["SQL01"][0])
		require.Empty(t, h.collectionOf("SQL01"))
	})

	require.Equal(t, calls, h.est.SCCM().CallsByTemplate()[sccm.SetMembershipTemplate], "refusals never reach SCCM")
	require.Equal(t, []string{"Patch - A"}, h.collectionOf("WEB01"))

	t.Run("SafeRequestCarriedOut", func(t *testing.T) {
		number, sysID := h.request("C", dev("WEB02", "Shop", "frontend"))
		note := h.waitNote(sysID, "moved into the collection")
		require.NotContains(t, note, "SERVICE SAFETY")
		require.Equal(t, "moved", h.outcomes(number)["WEB02"][0])
		require.Equal(t, []string{"Patch - C"}, h.collectionOf("WEB02"))
	})
}

// TestSafetyWarnPolicies: under warn, the request is carried out and noted,
// and the plan of a change lists the violation but deploys everything.
func TestSafetyWarnPolicies(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := time.Now().Truncate(time.Minute)
	h.load(safetySchedules(now)...)
	h.deps.Safety.RequestPolicy = PolicyWarn
	h.addDevices("WEB01", "WEB02")
	h.startClient()

	_, sys1 := h.request("A", dev("WEB01", "Shop", "frontend"))
	h.waitNote(sys1, "moved into the collection")
	number, sysID := h.request("B", dev("WEB02", "Shop", "frontend"))
	note := h.waitNote(sysID, "moved into the collection")
	t.Log(note)
	require.Contains(t, note, "SERVICE SAFETY WARNING (policy warn: carried out anyway)")
	require.Contains(t, note, "Shop / frontend: 2 of its 2 devices")
	require.Contains(t, note, "Schedules that would satisfy the rules: C, D.")
	got := h.outcomes(number)["WEB02"]
	require.Equal(t, "moved", got[0])
	require.Contains(t, got[1], "service safety warning")
	require.Equal(t, []string{"Patch - B"}, h.collectionOf("WEB02"))

	change, changeSys := h.approve(now, now.Add(11*time.Hour))
	note = h.waitNote(changeSys, "autopatch plan v1")
	require.Contains(t, note, "SERVICE SAFETY: this plan breaks service safety (policy warn")
	require.Contains(t, note, "Shop / frontend: 2 of its 2 devices")
	require.Contains(t, note, "devices: WEB01, WEB02")
	require.NotContains(t, note, "HELD")
	h.waitFor("deployments created", func() bool { return h.states(change)["created"] == 8 })
	var held int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM plan_entries e JOIN plans p ON p.id = e.plan_id
		WHERE p.change_number = $1 AND e.held IS NOT NULL`, change).Scan(&held))
	require.Zero(t, held)
}

// TestSafetyPlanHold: assignments that break the rules (made under warn)
// and a change that places the frontends but not their backend. Under hold
// the frontends' schedules are left out: B for the overlap, A and B for the
// missing backend; C keeps its deployments.
func TestSafetyPlanHold(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := time.Now().Truncate(time.Minute)
	h.load(safetySchedules(now)...)
	h.deps.Safety.PlanPolicy = PolicyHold
	_, err := h.pool.Exec(context.Background(), `INSERT INTO devices (name, schedule_name, service, tier) VALUES
		('WEB01', 'A', 'Shop', 'frontend'), ('WEB02', 'B', 'Shop', 'frontend'),
		('SQL01', 'D', 'Shop', 'backend'), ('APP01', 'C', 'Other', 'middle')`)
	require.NoError(t, err)
	h.startClient()

	// The change ends before D's window: the backend is not placed.
	change, sysID := h.approve(now, now.Add(8*time.Hour+30*time.Minute))
	note := h.waitNote(sysID, "autopatch plan v1")
	t.Log(note)
	require.Contains(t, note, "SERVICE SAFETY: this plan breaks service safety (policy hold")
	require.Contains(t, note, "Shop / frontend: 2 of its 2 devices")
	require.Contains(t, note, "Shop: frontend is patched in this change")
	require.Contains(t, note, "but backend is not: D (1 device): next window")
	require.Contains(t, note, "Held by service safety (no deployment in this change; patch them in a later change):\n- A\n- B\n")
	require.Contains(t, note, "HELD by service safety")

	h.waitFor("deployments created", func() bool { return h.states(change)["created"] == 2 })
	for _, d := range h.deployments(change) {
		require.Equal(t, "Patch - C", d.Collection, "only C is deployed")
	}
	rows, err := h.pool.Query(context.Background(), `SELECT e.schedule_name, coalesce(e.held, ''), e.window_start IS NOT NULL
		FROM plan_entries e JOIN plans p ON p.id = e.plan_id WHERE p.change_number = $1 ORDER BY 1`, change)
	require.NoError(t, err)
	type entry struct {
		held   bool
		window bool
	}
	got := map[string]entry{}
	for rows.Next() {
		var name, held string
		var window bool
		require.NoError(t, rows.Scan(&name, &held, &window))
		got[name] = entry{held != "", window}
		if held != "" {
			require.Contains(t, held, "Shop")
		}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]entry{
		"A": {true, true}, "B": {true, true}, "C": {false, true}, "D": {false, false},
	}, got, "held entries keep the window they would have had")
}
