package jobs

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// fakeSite answers reads as a site would: each deployment has one device
// named after it, each read one device named after its collection.
type fakeSite struct {
	SCCM
	err      error
	inFlight atomic.Int32
	most     atomic.Int32
	hold     time.Duration
}

func (f *fakeSite) DeploymentStatus(_ context.Context, names []string) (sccm.StatusReport, error) {
	if f.err != nil {
		return sccm.StatusReport{}, f.err
	}
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.most.Load(); n > m && !f.most.CompareAndSwap(m, n); m = f.most.Load() {
	}
	time.Sleep(f.hold)
	var rep sccm.StatusReport
	for _, name := range names {
		rep.Devices = append(rep.Devices, sccm.DeviceStatus{Deployment: name, Device: "dev-" + name})
	}
	return rep, nil
}

func (f *fakeSite) DeviceStates(_ context.Context, reads []sccm.StateRead) ([]sccm.DeviceState, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := make([]sccm.DeviceState, len(reads))
	for i, r := range reads {
		out[i] = sccm.DeviceState{Read: i, Collection: r.Collection, Device: "dev-" + r.Collection}
	}
	return out, nil
}

func TestSites(t *testing.T) {
	t.Parallel()
	down := errors.New("winrm: unreachable")
	setup := func() *Deps {
		return &Deps{Sites: []Site{
			NewSite("PS1", &fakeSite{}, 2),
			NewSite("PS2", &fakeSite{err: down}, 2),
			NewSite("PS3", &fakeSite{}, 2),
		}}
	}

	t.Run("StatusOfTheSitesThatAnswered", func(t *testing.T) {
		t.Parallel()
		targets := []store.Deployment{{ID: 1, Name: "A", Site: "PS1"}, {ID: 2, Name: "B", Site: "PS2"}, {ID: 3, Name: "C", Site: "PS3"}, {ID: 4, Name: "A", Site: "PS1"}}
		rep, read, err := statusBySite(t.Context(), setup(), targets)
		require.ErrorIs(t, err, down)
		require.ErrorContains(t, err, "site PS2: ")
		require.ElementsMatch(t, []int64{1, 4, 3}, ids(read), "PS2's deployment is left for the retry")
		var devices []string
		for _, d := range rep.Devices {
			devices = append(devices, d.Device)
		}
		require.ElementsMatch(t, []string{"dev-A", "dev-C"}, devices, "one name read once")
	})

	t.Run("DeviceStatesKeepTheirReadIndex", func(t *testing.T) {
		t.Parallel()
		reads := []sccm.StateRead{{Collection: "c0"}, {Collection: "c1"}, {Collection: "c2"}, {Collection: "c3"}}
		states, unread, err := deviceStatesBySite(t.Context(), setup(), reads, []string{"PS3", "PS1", "PS2", "PS3"})
		require.ErrorIs(t, err, down)
		require.Equal(t, map[int]bool{2: true}, unread)
		require.Len(t, states, 3)
		for _, s := range states {
			require.Equal(t, reads[s.Read].Collection, s.Collection, "an answer names the read it answers")
		}
	})

	t.Run("UnknownSite", func(t *testing.T) {
		t.Parallel()
		_, err := setup().sccmAt("US1")
		require.ErrorContains(t, err, `sccm: site "US1" is not configured`)
		_, err = (&Deps{}).sccmAt("PS1")
		require.Error(t, err, "a row of a site while only the single site is configured")
	})

	t.Run("TheOneSiteOfToday", func(t *testing.T) {
		t.Parallel()
		one := &fakeSite{}
		d := &Deps{SCCM: one}
		require.Equal(t, []string{""}, d.siteCodes())
		conn, err := d.sccmAt("")
		require.NoError(t, err)
		require.Same(t, SCCM(one), conn, "unlimited, as before sites")
	})

	t.Run("JobsLimitedKeeperNot", func(t *testing.T) {
		t.Parallel()
		f := &fakeSite{hold: 50 * time.Millisecond}
		d := &Deps{Sites: []Site{NewSite("PS1", f, 2)}}
		conn, err := d.sccmAt("PS1")
		require.NoError(t, err)
		done := make(chan struct{})
		for range 6 {
			go func() {
				_, _ = conn.DeploymentStatus(context.Background(), []string{"A"})
				done <- struct{}{}
			}()
		}
		for range 6 {
			<-done
		}
		require.EqualValues(t, 2, f.most.Load(), "at most AUTOPATCH_SCCM_PS1_WORKERS calls of the jobs at once")
		keeper, err := d.keeperSCCM("PS1")
		require.NoError(t, err)
		require.Same(t, SCCM(f), keeper, "the keeper never waits for a slot")
	})
}

func ids(rows []store.Deployment) []int64 {
	out := make([]int64, len(rows))
	for i, d := range rows {
		out[i] = d.ID
	}
	return out
}
