package ui

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// collectionsCache keeps SCCM's answer for a while: the read is one WinRM
// call of a few seconds, and the answer changes when an administrator
// edits a collection, not per page view.
type collectionsCache struct {
	ttl time.Duration

	mu    sync.Mutex
	names []string
	at    time.Time
	err   error
}

// get returns the cached names, reading SCCM when the cache is older than
// the TTL. A failed read is cached too (for a tenth of the TTL), so a down
// SCCM is not asked on every page view.
func (cc *collectionsCache) get(ctx context.Context, read CollectionsFunc, now time.Time) ([]string, time.Time, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	fresh := cc.ttl
	if cc.err != nil {
		fresh = cc.ttl / 10
	}
	if !cc.at.IsZero() && now.Sub(cc.at) < fresh {
		return cc.names, cc.at, cc.err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cc.names, cc.err = read(rctx)
	cc.at = now
	return cc.names, cc.at, cc.err
}

type collectionRow struct {
	Name     string
	Schedule string
}

// siteCollections is one site's part of the page: its rows, or why it
// could not be read.
type siteCollections struct {
	Code    string
	Read    bool
	Problem string
	ReadAt  time.Time
	Rows    []collectionRow
}

type collectionsData struct {
	Problem string
	TTL     time.Duration
	Sites   []siteCollections
}

func (c *console) collectionsPage(ctx echo.Context) error {
	d := collectionsData{}
	if len(c.opts.Sites) == 0 {
		d.Problem = "SCCM is not configured (AUTOPATCH_SCCM_ENDPOINT), so autopatch cannot read its collections."
		return c.render(ctx, http.StatusOK, "collections", page{Title: "Collections", Nav: "collections", SignedIn: true, Data: d})
	}
	d.TTL = c.collections[0].ttl
	rctx := ctx.Request().Context()
	// Each site is read side by side, within its own cache: a slow or
	// down site costs the page its own timeout, not one per site.
	d.Sites = make([]siteCollections, len(c.opts.Sites))
	var wg sync.WaitGroup
	for i, site := range c.opts.Sites {
		wg.Go(func() {
			names, at, err := c.collections[i].get(rctx, site.Collections, c.opts.Now())
			d.Sites[i] = siteCollections{Code: site.Code, ReadAt: at}
			if err != nil {
				c.opts.Logger.WarnContext(rctx, "ui: read collections from SCCM", "site", site.Code, "error", err)
				d.Sites[i].Problem = "autopatch could not read the collections from SCCM just now; it tries again in a little while. autopatch's log has the reason."
				return
			}
			d.Sites[i].Read = true
			d.Sites[i].Rows = c.collectionRows(site.Code, names)
		})
	}
	wg.Wait()
	return c.render(ctx, http.StatusOK, "collections", page{Title: "Collections", Nav: "collections", SignedIn: true, Data: d})
}

// collectionRows marks the collections of site that are a schedule's: a
// schedule's collection is at its own site (a collection of the same name
// at another site is another collection).
func (c *console) collectionRows(site string, names []string) []collectionRow {
	bySchedule := map[string]string{}
	for _, s := range c.opts.Schedules.Get().All() {
		if site == "" || s.Site == site {
			bySchedule[strings.ToLower(s.Collection)] = s.Name
		}
	}
	rows := make([]collectionRow, 0, len(names))
	for _, n := range names {
		rows = append(rows, collectionRow{Name: n, Schedule: bySchedule[strings.ToLower(n)]})
	}
	return rows
}
