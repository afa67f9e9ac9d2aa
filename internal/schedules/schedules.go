// Package schedules keeps the schedules in force: loaded from the schedules
// file, synced into the database, swapped atomically on reload so a job
// reading them never sees half a file.
package schedules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/store"
)

// Set is an immutable set of schedules.
type Set struct {
	list   []calendar.Schedule
	byName map[string]int
}

// NewSet indexes schedules by name.
func NewSet(list []calendar.Schedule) *Set {
	s := &Set{list: list, byName: make(map[string]int, len(list))}
	for i, sc := range list {
		s.byName[sc.Name] = i
	}
	return s
}

// Get returns the schedule called name.
func (s *Set) Get(name string) (calendar.Schedule, bool) {
	i, ok := s.byName[name]
	if !ok {
		return calendar.Schedule{}, false
	}
	return s.list[i], true
}

// All returns the schedules sorted by name. Callers must not modify it.
func (s *Set) All() []calendar.Schedule { return s.list }

// Current holds the set in force. The zero value holds an empty set.
type Current struct {
	// Sites are the configured SCCM site codes (AUTOPATCH_SCCM_SITES); nil
	// is the one site of AUTOPATCH_SCCM_*, which has no code. Set it before
	// the first Load.
	Sites []string

	p atomic.Pointer[Set]
}

// Get returns the set in force.
func (c *Current) Get() *Set {
	if s := c.p.Load(); s != nil {
		return s
	}
	return NewSet(nil)
}

// ReadFile reads and validates a schedules file.
func ReadFile(path string) ([]calendar.Schedule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedules file: %w", err)
	}
	list, err := calendar.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("schedules file %s: %w", path, err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

// Load reads the file, syncs the database and puts the new set in force. On
// any error the set in force is kept: a bad edit of the file must not stop
// patching that was already planned.
func (c *Current) Load(ctx context.Context, path string, st *store.Store, logger *slog.Logger) error {
	list, err := ReadFile(path)
	if err != nil {
		return err
	}
	if err := ResolveSites(list, c.Sites); err != nil {
		return fmt.Errorf("schedules file %s: %w", path, err)
	}
	res, err := st.SyncSchedules(ctx, list)
	if err != nil {
		return err
	}
	c.p.Store(NewSet(list))
	logger.InfoContext(ctx, "schedules loaded", "file", path, "schedules", len(list),
		"added", res.Added, "updated", res.Updated, "retired", res.Retired)
	return nil
}

// ResolveSites checks each schedule's site against the configured sites
// and gives a schedule that names none the only site there is. With
// several sites a schedule must name its own: guessing would patch a
// collection at the wrong site server (docs/architecture.md §10.1).
func ResolveSites(list []calendar.Schedule, sites []string) error {
	var errs []error
	for i := range list {
		s := &list[i]
		switch {
		case s.Site == "" && len(sites) == 1:
			s.Site = sites[0]
		case s.Site == "" && len(sites) > 1:
			errs = append(errs, fmt.Errorf("schedule %q: site: required, several SCCM sites are configured (%s)", s.Name, strings.Join(sites, ", ")))
		case s.Site != "" && !slices.Contains(sites, s.Site):
			configured := "none: AUTOPATCH_SCCM_SITES is not set"
			if len(sites) > 0 {
				configured = strings.Join(sites, ", ")
			}
			errs = append(errs, fmt.Errorf("schedule %q: site: unknown site %q (configured: %s)", s.Name, s.Site, configured))
		}
	}
	return errors.Join(errs...)
}
