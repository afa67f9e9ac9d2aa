package ledger

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/autopatch/autopatch/internal/compliance"
)

// CSVHeader is the header row of the CSV form: one row per device, the
// JSON fields in the same order.
var CSVHeader = []string{"change", "device", "schedule", "kind", "service", "tier", "outcome", "status_at",
	"status_type", "error_code", "window_start", "window_end", "deadline", "by_deadline", "deferred_until",
	"forced_at", "forced_result", "evidence", "source", "evidence_at"}

// WriteCSV writes l's devices as CSV (RFC 4180; times in RFC 3339, empty
// when null).
func WriteCSV(w io.Writer, l Ledger) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("ledger: csv: %w", err)
	}
	for _, d := range l.Devices {
		st := ""
		if d.StatusType != 0 {
			st = strconv.Itoa(d.StatusType)
		}
		rec := []string{d.Change, d.Device, d.Schedule, d.Kind, d.Service, d.Tier, string(d.Outcome), stamp(d.StatusAt),
			st, d.ErrorCode, stamp(d.WindowStart), stamp(d.WindowEnd), d.Deadline.UTC().Format(time.RFC3339),
			strconv.FormatBool(d.ByDeadline), stamp(d.DeferredUntil), stamp(d.ForcedAt), d.ForcedResult, d.Evidence, d.Source, stamp(d.EvidenceAt)}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("ledger: csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("ledger: csv: %w", err)
	}
	return nil
}

// WriteTable writes l as the report a person reads: the summary, then one
// line per device.
func WriteTable(w io.Writer, l Ledger) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	scope := "change " + l.Scope.Change
	if l.Scope.Cycle != "" {
		scope = "cycle " + l.Scope.Cycle
	}
	fmt.Fprintf(tw, "Compliance of %s as of %s (evidence read %s)\n", scope, l.AsOf.Format(time.RFC3339), stamp(l.EvidenceAt))
	s := l.Summary
	fmt.Fprintf(tw, "devices %d, patched by deadline %d (%.1f%%), patched outside window %d, deadline passed %t\n",
		s.Devices, s.PatchedByDeadline, 100*s.ByDeadlineRatio(), s.PatchedOutsideWindow, s.DeadlinePassed)
	for _, o := range compliance.Outcomes {
		if n := s.ByOutcome[o]; n > 0 {
			fmt.Fprintf(tw, "  %s\t%d\n", o, n)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CHANGE\tDEVICE\tSCHEDULE\tOUTCOME\tSTATUS AT\tBY DEADLINE\tEVIDENCE")
	for _, d := range l.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", d.Change, d.Device, d.Schedule, d.Outcome, stamp(d.StatusAt), d.ByDeadline, d.Evidence)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("ledger: table: %w", err)
	}
	return nil
}

func stamp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
