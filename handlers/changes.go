package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

type changeJSON struct {
	Number           string    `json:"number"`
	SysID            string    `json:"sys_id"`
	State            string    `json:"state"`
	Approval         string    `json:"approval"`
	Start            time.Time `json:"start"`
	End              time.Time `json:"end"`
	UpdateGroups     []string  `json:"update_groups"`
	Schedules        []string  `json:"schedules"` // null: every automatic and manual_reboot schedule
	ShortDescription string    `json:"short_description"`
	Status           string    `json:"status"`
	Revision         int64     `json:"revision"`
	UpdatedAt        time.Time `json:"updated_at"`
	// Classification and Deadline (docs/architecture.md §9.2): the deadline
	// the change gives or its classification's; DeadlineGiven says which.
	Classification string    `json:"classification"`
	Deadline       time.Time `json:"deadline"`
	DeadlineGiven  bool      `json:"deadline_given"`
	OnHold         bool      `json:"on_hold"`
	ErrorBudget    string    `json:"error_budget,omitempty"` // the change's own; empty: AUTOPATCH_ERROR_BUDGET
	// Held is true while a hold is in force (see holds).
	Held bool `json:"held"`
}

type deploymentJSON struct {
	store.Deployment
	Transitions []store.TransitionRow `json:"transitions"`
}

type changeResponse struct {
	Change      changeJSON       `json:"change"`
	Plan        *store.Plan      `json:"plan"`
	Deployments []deploymentJSON `json:"deployments"`
	// Holds is the rollout's history: every hold and its release, with
	// their reasons, oldest first.
	Holds []store.Hold `json:"holds"`
	// ForcedWaves is the change's forced remediation (docs/architecture.md
	// §9.2): its waves in order, each with its devices and their results.
	ForcedWaves []store.WaveWithDevices `json:"forced_waves"`
}

// getChange is GET /api/v1/changes/{number}: the change as last received,
// its current plan, and every deployment with its state history.
func getChange(pool *pgxpool.Pool, deadlines ledger.Options) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		number := PathParam(c, "number")
		ch, err := store.GetChange(ctx, pool, number)
		if errors.Is(err, store.ErrNotFound) {
			return NewError(http.StatusNotFound, "not_found", fmt.Sprintf("autopatch has received no change %q", number))
		}
		if err != nil {
			return err
		}
		resp := changeResponse{
			Change: changeJSON{
				Number: ch.Number, SysID: ch.SysID, State: ch.State, Approval: ch.Approval,
				Start: ch.Start.UTC(), End: ch.End.UTC(), UpdateGroups: ch.UpdateGroups, Schedules: ch.Schedules,
				ShortDescription: ch.ShortDescription, Status: ch.Status, Revision: ch.Revision, UpdatedAt: ch.UpdatedAt.UTC(),
				Classification: ch.Classification, Deadline: deadlines.Deadline(ch).UTC(), DeadlineGiven: ch.Deadline != nil,
				OnHold: ch.OnHold, ErrorBudget: ch.ErrorBudget,
			},
			Deployments: []deploymentJSON{},
		}
		holds, err := store.ChangeHolds(ctx, pool, number)
		if err != nil {
			return err
		}
		if resp.ForcedWaves, err = store.ChangeForcing(ctx, pool, number); err != nil {
			return err
		}
		resp.Holds = holds
		if resp.Holds == nil {
			resp.Holds = []store.Hold{}
		}
		for _, h := range holds {
			resp.Change.Held = resp.Change.Held || h.Active()
		}
		plan, err := store.LatestPlan(ctx, pool, number)
		switch {
		case err == nil:
			resp.Plan = &plan
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		deps, err := store.ChangeDeployments(ctx, pool, number)
		if err != nil {
			return err
		}
		transitions, err := store.ChangeTransitions(ctx, pool, number)
		if err != nil {
			return err
		}
		byID := map[int64][]store.TransitionRow{}
		for _, t := range transitions {
			byID[t.DeploymentID] = append(byID[t.DeploymentID], t)
		}
		for _, d := range deps {
			ts := byID[d.ID]
			if ts == nil {
				ts = []store.TransitionRow{}
			}
			resp.Deployments = append(resp.Deployments, deploymentJSON{Deployment: d, Transitions: ts})
		}
		return c.JSON(http.StatusOK, resp)
	}
}
