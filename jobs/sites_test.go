package jobs

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/estate"
)

// sitesHarness is a harness whose simulated estate has several SCCM
// sites, each a site server on a WinRM endpoint of its own
// (docs/architecture.md §10.1): the seed's site PS1 and the further ones.
type sitesHarness struct {
	*harness
	codes []string
}

// newSitesHarness starts the estate with sites PS1 and further; slow
// delays every call to a site by its duration, as a site server that
// answers slowly would.
func newSitesHarness(t *testing.T, further []string, slow map[string]time.Duration) *sitesHarness {
	t.Helper()
	return withSites(t, newHarness(t, func(o *estate.Options) { o.Sites = further }), further, slow)
}

// withSites gives h, whose estate was started with the further sites
// (estate.Options.Sites), a connector per site in Deps.Sites, as serve
// does with AUTOPATCH_SCCM_SITES; before h's client starts.
func withSites(t testing.TB, harness *harness, further []string, slow map[string]time.Duration) *sitesHarness {
	t.Helper()
	h := &sitesHarness{harness: harness}
	h.codes = append([]string{sccmsim.DefaultSiteCode}, further...)
	for _, code := range h.codes {
		cfg := h.est.WinRMConfig()
		cfg.Endpoint = h.est.SiteEndpoint(code)
		cfg.Timeout = 10 * time.Second
		runner, err := winrm.New(cfg, h.deps.Logger)
		require.NoError(t, err)
		var conn SCCM = sccm.New(runner, code, h.deps.Logger)
		if d := slow[code]; d > 0 {
			delay := new(atomic.Int64)
			delay.Store(int64(d))
			conn = stallingSCCM{SCCM: conn, delay: delay}
		}
		h.deps.Sites = append(h.deps.Sites, NewSite(code, conn, 2))
	}
	h.deps.Schedules.Sites = h.codes
	return h
}

// siteSchedule is schedule at a site.
func siteSchedule(name, site string, w window) string {
	return strings.Replace(schedule(name, "automatic", w), "kind:", "site: "+site+", kind:", 1)
}

// load puts the schedules in force and creates each one's collection at
// its site.
func (h *sitesHarness) load(entries ...string) {
	h.t.Helper()
	h.harness.load(entries...)
	for _, s := range h.deps.Schedules.Get().All() {
		h.est.Site(s.Site).AddCollection(s.Collection, 0)
	}
}

// loadEachSite puts in force one automatic schedule AUTO-<code> at each
// site, all with window w.
func (h *sitesHarness) loadEachSite(w window) {
	h.t.Helper()
	var entries []string
	for _, c := range h.codes {
		entries = append(entries, siteSchedule("AUTO-"+c, c, w))
	}
	h.load(entries...)
}

// deploymentsAt returns a site's deployments of a change.
func (h *sitesHarness) deploymentsAt(site, number string) []sccmsim.DeploymentState {
	var out []sccmsim.DeploymentState
	for _, d := range h.est.Site(site).State().Deployments {
		if strings.HasPrefix(d.Name, "AP-"+number+"-") {
			out = append(out, d)
		}
	}
	return out
}

// TestSitesOpenSideBySide: one change spans three sites. Each site creates
// its deployments in one call and opens and closes the shared window in one
// call each, on time; no site sees another's deployments; each site's
// device status is read at its own site.
func TestSitesOpenSideBySide(t *testing.T) {
	t.Parallel()
	h := newSitesHarness(t, []string{"PS2", "PS3"}, nil)
	codes := h.codes
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(10 * time.Second), now.Add(16 * time.Second)}
	h.loadEachSite(w)
	for _, c := range codes {
		_, err := h.est.Site(c).AddDevice("SRV-"+c, sccmsim.Outcome{})
		require.NoError(t, err)
		require.NoError(t, h.est.Site(c).AddMember("Patch - AUTO-"+c, "SRV-"+c))
	}
	number, _ := h.approve(now, now.Add(time.Hour))

	h.waitFor("every deployment closed", func() bool { return h.states(number)["closed"] == 6 })
	h.waitFor("every site's device read", func() bool {
		var n int
		require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM device_results r
			JOIN deployments d ON d.id = r.deployment_id
			WHERE d.change_number = $1 AND r.device_name = 'SRV-' || d.site`, number).Scan(&n))
		return n == 6
	})
	var strays int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM device_results r
		JOIN deployments d ON d.id = r.deployment_id
		WHERE d.change_number = $1 AND r.device_name <> 'SRV-' || d.site`, number).Scan(&strays))
	require.Zero(t, strays, "a deployment's status comes from its own site")
	for _, c := range codes {
		deps := h.deploymentsAt(c, number)
		require.Len(t, deps, 2, "site %s: its schedule × 2 update groups", c)
		for _, d := range deps {
			require.Equal(t, "Patch - AUTO-"+c, d.Collection, "site %s holds only its own", c)
			h.requireOnTime(t, d, w)
		}
		calls := h.est.Site(c).CallsByTemplate()
		require.Equal(t, 1, calls[sccm.CreateDeploymentsTemplate], "site %s: one creation call", c)
		require.Equal(t, 2, calls[sccm.SetEnabledTemplate], "site %s: one call opens the window, one closes it", c)
		require.Positive(t, calls[sccm.DeploymentStatusTemplate], "site %s: its status read at its own server", c)
		t.Logf("site %s: %d create, %d open+close, %d status calls", c, calls[sccm.CreateDeploymentsTemplate], calls[sccm.SetEnabledTemplate], calls[sccm.DeploymentStatusTemplate])
	}
	t.Logf("a window of a change spanning %d sites: %d WinRM calls to open it, one per site", len(codes), len(codes))
	rows, err := h.pool.Query(context.Background(), `SELECT site, count(*) FROM deployments WHERE change_number = $1 GROUP BY site ORDER BY site`, number)
	require.NoError(t, err)
	got := map[string]int{}
	for rows.Next() {
		var site string
		var n int
		require.NoError(t, rows.Scan(&site, &n))
		got[site] = n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]int{"PS1": 2, "PS2": 2, "PS3": 2}, got)
}

// TestSiteDownOthersOnTime: one of three sites is unreachable from before
// its window until too little of it is left. The other sites' windows open
// and close on time; the down site's window is missed, never enabled, and
// noted on the change.
func TestSiteDownOthersOnTime(t *testing.T) {
	t.Parallel()
	h := newSitesHarness(t, []string{"PS2", "PS3"}, nil)
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(10 * time.Second), now.Add(18 * time.Second)}
	h.loadEachSite(w)
	number, sysID := h.approve(now, now.Add(time.Hour))
	h.waitFor("deployments created", func() bool { return h.states(number)["created"] == 6 })

	h.est.SetSiteDown("PS2", true)
	time.Sleep(time.Until(w.start.Add(6 * time.Second)))
	h.est.SetSiteDown("PS2", false)

	h.waitFor("the others closed, the down site's missed", func() bool {
		s := h.states(number)
		return s["closed"] == 4 && s["missed"] == 2
	})
	for _, c := range []string{"PS1", "PS3"} {
		for _, d := range h.deploymentsAt(c, number) {
			h.requireOnTime(t, d, w)
		}
	}
	time.Sleep(time.Until(w.end.Add(time.Second)))
	for _, d := range h.deploymentsAt("PS2", number) {
		requireNeverEnabled(t, d)
	}
	h.waitFor("the missed note", func() bool { return strings.Contains(h.notes(sysID), "window MISSED") })
	require.Contains(t, h.notes(sysID), fmt.Sprintf("AP-%s-AUTO-PS2-", number))
}

// TestSlowSiteOthersOnTime: every call to one of three sites takes 8 s,
// including the creation of the change's deployments there. The other
// sites create theirs and open and close their windows on time: each site
// commits in its own transactions and has its own keeper loop.
func TestSlowSiteOthersOnTime(t *testing.T) {
	t.Parallel()
	h := newSitesHarness(t, []string{"PS2", "PS3"}, map[string]time.Duration{"PS2": 8 * time.Second})
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(6 * time.Second), now.Add(12 * time.Second)}
	h.loadEachSite(w)
	number, _ := h.approve(now, now.Add(time.Hour))

	h.waitFor("the fast sites' deployments closed", func() bool {
		n := 0
		for _, c := range []string{"PS1", "PS3"} {
			for _, d := range h.deploymentsAt(c, number) {
				if len(d.Events) == 2 {
					n++
				}
			}
		}
		return n == 4
	})
	for _, c := range []string{"PS1", "PS3"} {
		for _, d := range h.deploymentsAt(c, number) {
			h.requireOnTime(t, d, w)
		}
	}
	// The slow site catches up on its own: created, then opened late or
	// missed, never left waiting.
	h.waitFor("the slow site's window settled", func() bool {
		s := h.states(number)
		return s["closed"]+s["missed"] == 6
	})
}
