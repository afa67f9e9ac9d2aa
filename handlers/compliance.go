package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/ledger"
)

// cyclePattern is a patch cycle as `plan --month` takes it.
var cyclePattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}$`)

// getCompliance is GET /api/v1/compliance?change=CHG…|cycle=YYYY-MM
// [&format=csv]: the compliance ledger of a change or of a patch cycle
// (docs/architecture.md §9.1), decided now from the stored evidence.
func getCompliance(pool *pgxpool.Pool, opts ledger.Options, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		change, cycle, format := c.QueryParam("change"), c.QueryParam("cycle"), c.QueryParam("format")
		var details []FieldError
		switch {
		case change == "" && cycle == "":
			details = append(details, FieldError{Field: "change", Message: "give change=CHG… or cycle=YYYY-MM"})
		case change != "" && cycle != "":
			details = append(details, FieldError{Field: "cycle", Message: "give change or cycle, not both"})
		}
		var month calendar.Month
		if cycle != "" {
			m, err := calendar.ParseMonth(cycle)
			if err != nil || !cyclePattern.MatchString(cycle) {
				details = append(details, FieldError{Field: "cycle", Message: "must be a month as YYYY-MM, such as 2026-12"})
			}
			month = m
		}
		if format != "" && format != "json" && format != "csv" {
			details = append(details, FieldError{Field: "format", Message: "must be json or csv"})
		}
		if len(details) > 0 {
			return &APIError{Status: http.StatusBadRequest, Code: "validation_failed", Message: "invalid compliance query", Details: details}
		}
		var (
			l   ledger.Ledger
			err error
		)
		if change != "" {
			l, err = ledger.ForChange(ctx, pool, change, now(), opts)
			if errors.Is(err, ledger.ErrNotFound) {
				return &APIError{Status: http.StatusBadRequest, Code: "validation_failed", Message: "unknown change",
					Details: []FieldError{{Field: "change", Message: fmt.Sprintf("autopatch has received no change %q", change)}}}
			}
		} else {
			l, err = ledger.ForCycle(ctx, pool, month, now(), opts)
		}
		if err != nil {
			return err
		}
		if format == "csv" {
			var b bytes.Buffer
			if err := ledger.WriteCSV(&b, l); err != nil {
				return err
			}
			name := "compliance-" + change + cycle + ".csv"
			c.Response().Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
			return c.Blob(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
		}
		return c.JSON(http.StatusOK, l)
	}
}
