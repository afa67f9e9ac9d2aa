package ui

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/store"
)

type failuresData struct {
	State, Kind, Change string
	States, Kinds       []string
	Rows                []failureView
	Next                string
	First               bool
}

type failureCursor struct {
	ID int64 `json:"i"`
}

// failureList answers "what failed last weekend?": failures, newest first,
// filtered by state, kind and change.
func (c *console) failureList(ctx echo.Context) error {
	d := failuresData{
		State: ctx.QueryParam("state"), Kind: ctx.QueryParam("kind"), Change: strings.TrimSpace(ctx.QueryParam("change")),
		States: []string{store.FailureOpen, store.FailureResolved},
		Kinds:  []string{store.FailureError, store.FailureNoStatus, store.FailureMissedWindow, store.FailureStorm},
	}
	if d.State != "" && !slices.Contains(d.States, d.State) {
		return c.problem(ctx, http.StatusBadRequest, "Unknown state",
			fmt.Sprintf("%q is not a state; a failure is open or resolved.", d.State), c.href("/failures"), "all failures")
	}
	if d.Kind != "" && !slices.Contains(d.Kinds, d.Kind) {
		return c.problem(ctx, http.StatusBadRequest, "Unknown kind",
			fmt.Sprintf("%q is not a kind of failure; it is one of %s.", d.Kind, strings.Join(d.Kinds, ", ")), c.href("/failures"), "all failures")
	}
	if len(d.Change) > 200 {
		return c.problem(ctx, http.StatusBadRequest, "Change too long", "A change number is at most 200 characters.", c.href("/failures"), "all failures")
	}
	f := store.FailureFilter{State: d.State, Kind: d.Kind, Change: d.Change, Limit: pageSize + 1}
	if v := ctx.QueryParam("cursor"); v != "" {
		var key failureCursor
		if !decodeCursor(v, &key) || key.ID <= 0 {
			return c.problem(ctx, http.StatusBadRequest, "Page not found",
				"The page link is not one the console made (the cursor parameter is wrong). Start again from the first page.", c.href("/failures"), "the first page")
		}
		f.After = key.ID
	}
	rows, err := store.ListFailures(ctx.Request().Context(), c.opts.DB, f)
	if err != nil {
		return c.fail(ctx, err)
	}
	d.First = f.After == 0
	if len(rows) > pageSize {
		rows = rows[:pageSize]
		d.Next = queryString("state", d.State, "kind", d.Kind, "change", d.Change, "cursor", encodeCursor(failureCursor{ID: rows[len(rows)-1].ID}))
	}
	d.Rows = c.failureViews(rows)
	return c.render(ctx, http.StatusOK, "failures", page{Title: "Failures", Nav: "failures", SignedIn: true, Data: d})
}
