package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
)

// TestJudgeWindow checks the invariants of one window against made-up
// histories: no processes, only the availability the harness would have
// recorded and the events the simulator would show.
func TestJudgeWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	w := window{schedule: "S1", start: at(10), end: at(14)}
	events := func(es ...any) *sccmsim.DeploymentState {
		d := &sccmsim.DeploymentState{}
		for i := 0; i < len(es); i += 2 {
			d.Events = append(d.Events, sccmsim.Event{At: at(es[i].(float64)), Enabled: es[i+1].(bool)})
		}
		return d
	}
	always := []interval{{from: at(0)}}
	for _, tt := range []struct {
		name string
		up   []interval
		dep  *sccmsim.DeploymentState
		want []string
	}{
		{"OnTime", always, events(10.1, true, 14.1, false), nil},
		{"EnabledBeforeStart", always, events(9.998, true, 14.1, false), []string{invOutside}},
		{"EnabledAtEnd", always, events(14.0, true, 14.1, false), []string{invOutside, invOpen}},
		{"MissedWhileUp", always, events(), []string{invOpen}},
		{"EnabledTwice", always, events(10.1, true, 11.0, false, 11.5, true, 14.1, false), []string{invDoubled}},
		{"StillEnabled", always, events(10.1, true), []string{invClose}},
		{"ClosedLate", always, events(10.1, true, 20.5, false), []string{invClose}},
		{"DownAtStartMissedIsAllowed", []interval{{from: at(0), to: at(9)}, {from: at(12)}}, events(), nil},
		{"DownAtStartLateOpen", []interval{{from: at(0), to: at(9)}, {from: at(11)}}, events(11.5, true, 14.1, false), nil},
		{"KilledBeforeOpenNotJudged", []interval{{from: at(0), to: at(10.5)}, {from: at(13)}}, events(13.2, true, 14.2, false), nil},
		{"CloseDueAtReturn", []interval{{from: at(0), to: at(13)}, {from: at(16)}}, events(10.1, true, 17.0, false), nil},
		{"CloseLateAfterReturn", []interval{{from: at(0), to: at(13)}, {from: at(16)}}, events(10.1, true, 22.0, false), []string{invClose}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &Harness{replicas: []*replica{{up: tt.up}}}
			var f Figures
			var got []string
			for _, v := range h.judgeWindow("CHG1", w, tt.dep, at(40), onTime, &f) {
				got = append(got, v.Invariant)
			}
			require.Equal(t, tt.want, got)
		})
	}
}
