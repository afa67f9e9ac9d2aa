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

type collectionsData struct {
	Read    bool
	Problem string
	ReadAt  time.Time
	TTL     time.Duration
	Rows    []collectionRow
}

func (c *console) collectionsPage(ctx echo.Context) error {
	d := collectionsData{TTL: c.collections.ttl}
	if c.opts.Collections == nil {
		d.Problem = "SCCM is not configured (AUTOPATCH_SCCM_ENDPOINT), so autopatch cannot read its collections."
		return c.render(ctx, http.StatusOK, "collections", page{Title: "Collections", Nav: "collections", SignedIn: true, Data: d})
	}
	names, at, err := c.collections.get(ctx.Request().Context(), c.opts.Collections, c.opts.Now())
	d.ReadAt = at
	if err != nil {
		c.opts.Logger.WarnContext(ctx.Request().Context(), "ui: read collections from SCCM", "error", err)
		d.Problem = "autopatch could not read the collections from SCCM just now; it tries again in a little while. autopatch's log has the reason."
		return c.render(ctx, http.StatusOK, "collections", page{Title: "Collections", Nav: "collections", SignedIn: true, Data: d})
	}
	d.Read = true
	bySchedule := map[string]string{}
	for _, s := range c.opts.Schedules.Get().All() {
		bySchedule[strings.ToLower(s.Collection)] = s.Name
	}
	for _, n := range names {
		d.Rows = append(d.Rows, collectionRow{Name: n, Schedule: bySchedule[strings.ToLower(n)]})
	}
	return c.render(ctx, http.StatusOK, "collections", page{Title: "Collections", Nav: "collections", SignedIn: true, Data: d})
}
