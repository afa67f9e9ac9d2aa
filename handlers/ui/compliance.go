package ui

import (
	"net/http"
	"sort"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/ledger"
)

type complianceData struct {
	Cycle, Prev, Next string
	Ledger            ledger.Ledger
	Outcomes          []outcomeCount
	// Shown is how many device lines the page lists (the first
	// complianceRows); the report has them all.
	Shown int
}

type outcomeCount struct {
	Outcome compliance.Outcome
	Devices int
}

// complianceRows bounds the device lines of the page: a cycle of 8,000
// devices is read with `autopatch report` or the API's CSV, not scrolled.
const complianceRows = 500

// compliancePage is the ledger of a patch cycle (docs/architecture.md
// §9.1): the two numbers, the devices by outcome, and the devices that are
// not (yet) patched first.
func (c *console) compliancePage(ctx echo.Context) error {
	cycle := calendar.MonthOf(c.opts.Now().UTC())
	if v := ctx.QueryParam("cycle"); v != "" {
		m, err := calendar.ParseMonth(v)
		if err != nil || m.Year < 2000 || m.Year > 2100 {
			return c.problem(ctx, http.StatusBadRequest, "Not a cycle",
				"\""+v+"\" is not a patch cycle. Write it as YYYY-MM, for example "+cycle.String()+".", c.href("/compliance"), "this cycle")
		}
		cycle = m
	}
	l, err := ledger.ForCycle(ctx.Request().Context(), c.opts.DB, cycle, c.opts.Now(), c.opts.Ledger)
	if err != nil {
		return err
	}
	d := complianceData{Cycle: cycle.String(), Prev: cycle.AddMonths(-1).String(), Next: cycle.AddMonths(1).String(), Ledger: l}
	for _, o := range compliance.Outcomes {
		d.Outcomes = append(d.Outcomes, outcomeCount{Outcome: o, Devices: l.Summary.ByOutcome[o]})
	}
	// What needs a person first: failed and silent devices, then the rest.
	sort.SliceStable(d.Ledger.Devices, func(i, j int) bool {
		return outcomeOrder(d.Ledger.Devices[i].Outcome) < outcomeOrder(d.Ledger.Devices[j].Outcome)
	})
	d.Shown = min(len(d.Ledger.Devices), complianceRows)
	d.Ledger.Devices = d.Ledger.Devices[:d.Shown]
	return c.render(ctx, http.StatusOK, "compliance", page{Title: "Compliance " + d.Cycle, Nav: "compliance", SignedIn: true, Data: d})
}

// outcomeOrder puts the outcomes that need someone first.
func outcomeOrder(o compliance.Outcome) int {
	switch o {
	case compliance.Failed, compliance.ManualNoncompliant:
		return 0
	case compliance.NotReported, compliance.PendingReboot, compliance.ClientInactive:
		return 1
	case compliance.PatchedOutsideWindow:
		return 2
	case compliance.Pending:
		return 3
	}
	return 4
}
