package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/internal/ingest"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/jobs"
)

// resumeRequest is the body of POST /api/v1/changes/{number}/resume.
type resumeRequest struct {
	Reason string `json:"reason" validate:"required,max=4000,multiline"`
}

// resumeResponse lists the holds the resume released.
type resumeResponse struct {
	Change   string       `json:"change"`
	Released []store.Hold `json:"released"`
}

// resumeChange is POST /api/v1/changes/{number}/resume: it releases every
// hold in force on the change (a halt, tier gating, a pause) and accepts
// the failures counted so far against its budget, in one transaction with
// the job that releases the deployments, so the next window opens at its
// time. The hold, its release, the reason and who asked (the API token;
// the ServiceNow UI action sends the user's name in the reason) stay in
// the change's history. 409 when nothing holds the change.
func resumeChange(pool *pgxpool.Pool, inserter ingest.JobInserter, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		number := c.Param("number")
		raw, err := readBody(c.Request())
		if err != nil {
			return err
		}
		var req resumeRequest
		if apiErr := decodeJSON(raw, &req); apiErr != nil {
			return apiErr
		}
		var p problems
		p.check(&req)
		if strings.TrimSpace(req.Reason) == "" && len(p) == 0 {
			p.add("reason", "is required")
		}
		if apiErr := p.err(); apiErr != nil {
			return apiErr
		}
		at := now()
		var released []store.Hold
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			released, err = store.Resume(ctx, tx, number, req.Reason, "api", at)
			if err != nil {
				return err
			}
			_, err = inserter.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobs.HoldChangeArgs{
				ChangeNumber: number, Resume: req.Reason, Key: at.UTC().Format(time.RFC3339Nano)}}})
			return err
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
			return NewError(http.StatusNotFound, "not_found", fmt.Sprintf("autopatch has received no change %q", number))
		case errors.Is(err, store.ErrNotHeld):
			return NewError(http.StatusConflict, "not_held", fmt.Sprintf("change %s is not held: nothing to resume", number))
		case err != nil:
			return err
		}
		return c.JSON(http.StatusOK, resumeResponse{Change: number, Released: released})
	}
}
