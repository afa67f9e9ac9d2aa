package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// Site is one SCCM site of an estate of several (docs/architecture.md
// §10.1). Make it with NewSite.
type Site struct {
	// Code is the site code schedules name (PS1).
	Code string
	// keeper is the connector of the window keeper: windows never wait
	// for a free call behind jobs (§3.3).
	keeper SCCM
	// jobs is the same connector, with at most workers calls at once.
	jobs SCCM
}

// NewSite is the site code reached through conn; the jobs make at most
// workers calls to it at once (AUTOPATCH_SCCM_<CODE>_WORKERS).
func NewSite(code string, conn SCCM, workers int) Site {
	return Site{Code: code, keeper: conn, jobs: limitSCCM(conn, workers)}
}

// siteCodes are the sites this process acts on: the codes of Deps.Sites,
// or the one site of Deps.SCCM, whose code is empty.
func (d *Deps) siteCodes() []string {
	if len(d.Sites) == 0 {
		return []string{""}
	}
	codes := make([]string, len(d.Sites))
	for i, s := range d.Sites {
		codes[i] = s.Code
	}
	return codes
}

// sccmAt is the jobs' connector of the site with code. A row of a site no
// longer configured fails here, where its job logs and retries it, rather
// than reaching another site's server.
func (d *Deps) sccmAt(code string) (SCCM, error) {
	s, err := d.site(code)
	return s.jobs, err
}

// keeperSCCM is the window keeper's connector of the site with code.
func (d *Deps) keeperSCCM(code string) (SCCM, error) {
	s, err := d.site(code)
	return s.keeper, err
}

func (d *Deps) site(code string) (Site, error) {
	if len(d.Sites) == 0 && code == "" {
		return Site{keeper: d.SCCM, jobs: d.SCCM}, nil
	}
	for _, s := range d.Sites {
		if s.Code == code {
			return s, nil
		}
	}
	return Site{}, fmt.Errorf("sccm: site %q is not configured (AUTOPATCH_SCCM_SITES)", code)
}

// siteOf is the site of a schedule in force; empty (the one site) for one
// no longer in force.
func (d *Deps) siteOf(schedule string) string {
	s, _ := d.Schedules.Get().Get(schedule)
	return s.Site
}

// bySite groups rows by their site, in the order the sites first appear.
func bySite[T any](rows []T, site func(T) string) (codes []string, groups map[string][]T) {
	groups = map[string][]T{}
	for _, r := range rows {
		c := site(r)
		if _, ok := groups[c]; !ok {
			codes = append(codes, c)
		}
		groups[c] = append(groups[c], r)
	}
	return codes, groups
}

func deploymentSite(d store.Deployment) string { return d.Site }

// eachSite calls call for every site in codes side by side, each with its
// own connector, and returns each failed site's error. A site that fails
// or is slow holds up only the caller's wait, never another site's call.
func eachSite(ctx context.Context, deps *Deps, codes []string, call func(ctx context.Context, code string, conn SCCM) error) map[string]error {
	var mu sync.Mutex
	failed := map[string]error{}
	var wg sync.WaitGroup
	for _, code := range codes {
		wg.Go(func() {
			conn, err := deps.sccmAt(code)
			if err == nil {
				err = call(ctx, code, conn)
			}
			if err != nil {
				mu.Lock()
				failed[code] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// siteErrors joins the failed sites' errors, each naming its site.
func siteErrors(failed map[string]error) error {
	codes := make([]string, 0, len(failed))
	for c := range failed {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var errs []error
	for _, c := range codes {
		if c == "" {
			errs = append(errs, failed[c])
			continue
		}
		errs = append(errs, fmt.Errorf("site %s: %w", c, failed[c]))
	}
	return errors.Join(errs...)
}

// statusBySite reads the status of targets with one DeploymentStatus call
// per site, side by side. It returns the merged report of the sites that
// answered, the targets it covers, and the failed sites' error: callers
// record what was read and retry the rest.
func statusBySite(ctx context.Context, deps *Deps, targets []store.Deployment) (sccm.StatusReport, []store.Deployment, error) {
	codes, groups := bySite(targets, deploymentSite)
	reports := map[string]sccm.StatusReport{}
	var mu sync.Mutex
	failed := eachSite(ctx, deps, codes, func(ctx context.Context, code string, conn SCCM) error {
		var names []string
		for _, d := range groups[code] {
			if !slices.Contains(names, d.Name) {
				names = append(names, d.Name)
			}
		}
		rep, err := conn.DeploymentStatus(ctx, names)
		if err != nil {
			return err
		}
		mu.Lock()
		reports[code] = rep
		mu.Unlock()
		return nil
	})
	var merged sccm.StatusReport
	var read []store.Deployment
	for _, code := range codes {
		rep, ok := reports[code]
		if !ok {
			continue
		}
		merged.Devices = append(merged.Devices, rep.Devices...)
		merged.Missing = append(merged.Missing, rep.Missing...)
		read = append(read, groups[code]...)
	}
	return merged, read, siteErrors(failed)
}

// limitSCCM bounds the jobs' calls in flight to one site from this process
// to n (AUTOPATCH_SCCM_<CODE>_WORKERS): WinRM limits the shells of one user
// per server, and with several sites the sccm queue's size no longer
// bounds each site's share.
func limitSCCM(s SCCM, n int) SCCM {
	return &limitedSCCM{next: s, slots: make(chan struct{}, max(n, 1))}
}

type limitedSCCM struct {
	next  SCCM
	slots chan struct{}
}

func (l *limitedSCCM) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sccm: waiting for a free call to the site: %w", ctx.Err())
	}
}

func (l *limitedSCCM) release() { <-l.slots }

func limited[T any](ctx context.Context, l *limitedSCCM, call func() (T, error)) (T, error) {
	if err := l.acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	defer l.release()
	return call()
}

func (l *limitedSCCM) SetMembership(ctx context.Context, moves []sccm.Move, managed []string) ([]sccm.MoveResult, error) {
	return limited(ctx, l, func() ([]sccm.MoveResult, error) { return l.next.SetMembership(ctx, moves, managed) })
}

func (l *limitedSCCM) CreateDeployments(ctx context.Context, specs []sccm.DeploymentSpec) ([]sccm.Deployment, error) {
	return limited(ctx, l, func() ([]sccm.Deployment, error) { return l.next.CreateDeployments(ctx, specs) })
}

func (l *limitedSCCM) OpenDeployments(ctx context.Context, names, collections []string) ([]sccm.EnableResult, error) {
	return limited(ctx, l, func() ([]sccm.EnableResult, error) { return l.next.OpenDeployments(ctx, names, collections) })
}

func (l *limitedSCCM) SetEnabled(ctx context.Context, names []string, enabled bool) ([]sccm.EnableResult, error) {
	return limited(ctx, l, func() ([]sccm.EnableResult, error) { return l.next.SetEnabled(ctx, names, enabled) })
}

func (l *limitedSCCM) DeleteDeployments(ctx context.Context, names []string) ([]sccm.DeleteResult, error) {
	return limited(ctx, l, func() ([]sccm.DeleteResult, error) { return l.next.DeleteDeployments(ctx, names) })
}

func (l *limitedSCCM) DeploymentStatus(ctx context.Context, names []string) (sccm.StatusReport, error) {
	return limited(ctx, l, func() (sccm.StatusReport, error) { return l.next.DeploymentStatus(ctx, names) })
}

func (l *limitedSCCM) ForceWave(ctx context.Context, w sccm.ForceWave) (sccm.ForceResult, error) {
	return limited(ctx, l, func() (sccm.ForceResult, error) { return l.next.ForceWave(ctx, w) })
}

func (l *limitedSCCM) DeviceStates(ctx context.Context, reads []sccm.StateRead) ([]sccm.DeviceState, error) {
	return limited(ctx, l, func() ([]sccm.DeviceState, error) { return l.next.DeviceStates(ctx, reads) })
}

// deviceStatesBySite makes reads with one DeviceStates call per site
// (sites[i] is reads[i]'s), side by side. The answers' Read is the index in
// reads; unread holds the reads of the sites that failed, whose error is
// returned.
func deviceStatesBySite(ctx context.Context, deps *Deps, reads []sccm.StateRead, sites []string) (states []sccm.DeviceState, unread map[int]bool, err error) {
	idx := make([]int, len(reads))
	for i := range idx {
		idx[i] = i
	}
	codes, groups := bySite(idx, func(i int) string { return sites[i] })
	var mu sync.Mutex
	failed := eachSite(ctx, deps, codes, func(ctx context.Context, code string, conn SCCM) error {
		own := make([]sccm.StateRead, len(groups[code]))
		for j, i := range groups[code] {
			own[j] = reads[i]
		}
		got, err := conn.DeviceStates(ctx, own)
		if err != nil {
			return err
		}
		for j := range got {
			if got[j].Read < 0 || got[j].Read >= len(own) {
				return fmt.Errorf("device state: answer for read %d of %d", got[j].Read, len(own))
			}
			got[j].Read = groups[code][got[j].Read]
		}
		mu.Lock()
		states = append(states, got...)
		mu.Unlock()
		return nil
	})
	unread = map[int]bool{}
	for code := range failed {
		for _, i := range groups[code] {
			unread[i] = true
		}
	}
	return states, unread, siteErrors(failed)
}
