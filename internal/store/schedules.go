package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autopatch/autopatch/internal/calendar"
)

// ScheduleRow is a schedule as stored: the file's definition plus its life.
type ScheduleRow struct {
	Name       string          `json:"name"`
	Collection string          `json:"collection"`
	Kind       string          `json:"kind"`
	TimeZone   string          `json:"timezone"`
	Definition json.RawMessage `json:"definition"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	RetiredAt  *time.Time      `json:"retired_at,omitempty"`
}

// SyncResult says what a schedules file changed in the database.
type SyncResult struct {
	Added, Updated, Retired, Unchanged []string
}

// definition is the stored form of a schedule's rule: the schedules file's
// fields, so the API shows what the administrator wrote.
type definition struct {
	Anchor     string   `json:"anchor,omitempty"`
	OffsetDays *int     `json:"offset_days,omitempty"`
	Nth        int      `json:"nth,omitempty"`
	Weekday    string   `json:"weekday,omitempty"`
	Summary    string   `json:"summary,omitempty"` // e.g. PT+4
	Start      string   `json:"start,omitempty"`
	Duration   string   `json:"duration,omitempty"`
	Windows    []window `json:"windows,omitempty"`
}

type window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

func definitionOf(s calendar.Schedule) ([]byte, error) {
	d := definition{}
	if r := s.Recurrence; r != nil {
		d.Anchor, d.Summary = string(r.Anchor), r.String()
		if r.Anchor == calendar.AnchorPatchTuesday {
			d.OffsetDays = &r.OffsetDays
		} else {
			d.Nth, d.Weekday = r.Nth, strings.ToLower(r.Weekday.String())
		}
		d.Start = s.Start.String()
		d.Duration = s.Duration.String()
	}
	for _, w := range s.OneOffs {
		d.Windows = append(d.Windows, window{Start: w.Start.UTC(), End: w.End.UTC()})
	}
	return json.Marshal(d)
}

// SyncSchedules makes the schedules table match the file: new schedules are
// added, changed ones updated, ones that left the file retired (never
// deleted: plans and history still name them), and a schedule that comes
// back is un-retired. One transaction, so readers never see half a file.
func (s *Store) SyncSchedules(ctx context.Context, schedules []calendar.Schedule) (SyncResult, error) {
	var res SyncResult
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		// Serialise replicas syncing at once.
		if _, err := tx.Exec(ctx, "LOCK TABLE schedules IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		inFile := make([]string, 0, len(schedules))
		// Retire first so a collection handed from a leaving schedule to a
		// new one does not collide with the active-collection index.
		for _, sc := range schedules {
			inFile = append(inFile, sc.Name)
		}
		rows, err := tx.Query(ctx, `UPDATE schedules SET retired_at = now(), updated_at = now()
			WHERE retired_at IS NULL AND NOT (name = ANY($1)) RETURNING name`, inFile)
		if err != nil {
			return err
		}
		if res.Retired, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		for _, sc := range schedules {
			def, err := definitionOf(sc)
			if err != nil {
				return err
			}
			var inserted, changed bool
			err = tx.QueryRow(ctx, `
				INSERT INTO schedules (name, collection, kind, timezone, definition)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (name) DO UPDATE SET
					collection = EXCLUDED.collection, kind = EXCLUDED.kind,
					timezone = EXCLUDED.timezone, definition = EXCLUDED.definition,
					retired_at = NULL, updated_at = now()
				WHERE (schedules.collection, schedules.kind, schedules.timezone, schedules.definition, schedules.retired_at)
				      IS DISTINCT FROM (EXCLUDED.collection, EXCLUDED.kind, EXCLUDED.timezone, EXCLUDED.definition, NULL::timestamptz)
				RETURNING (xmax = 0), true`,
				sc.Name, sc.Collection, string(sc.Kind), sc.TimeZone, def).Scan(&inserted, &changed)
			switch {
			case err == pgx.ErrNoRows:
				res.Unchanged = append(res.Unchanged, sc.Name)
			case err != nil:
				return fmt.Errorf("schedule %s: %w", sc.Name, mapErr(err))
			case inserted:
				res.Added = append(res.Added, sc.Name)
			default:
				res.Updated = append(res.Updated, sc.Name)
			}
		}
		return nil
	})
	if err != nil {
		return SyncResult{}, fmt.Errorf("store: sync schedules: %w", err)
	}
	return res, nil
}

// ListSchedules returns every schedule, active first, then by name.
func (s *Store) ListSchedules(ctx context.Context) ([]ScheduleRow, error) {
	rows, err := s.Pool.Query(ctx, `SELECT name, collection, kind, timezone, definition, created_at, updated_at, retired_at
		FROM schedules ORDER BY retired_at IS NOT NULL, name`)
	if err != nil {
		return nil, fmt.Errorf("store: list schedules: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ScheduleRow])
	if err != nil {
		return nil, fmt.Errorf("store: list schedules: %w", err)
	}
	return out, nil
}
