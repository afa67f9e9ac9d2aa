package jobs

import "github.com/riverqueue/river"

// UnwindChangeArgs asks for a change's deployments to be taken back because
// the change was canceled or its approval withdrawn: deployments whose
// window has not opened are deleted, open ones disabled. The webhook has
// already set changes.status to canceled and bumped changes.revision; the
// worker re-reads the row, and does nothing if the change has since been
// approved again (a plan_change follows then). See PlanChangeArgs for the
// revision check.
type UnwindChangeArgs struct {
	ChangeNumber string `json:"change_number"`
}

// Kind implements river.JobArgs.
func (UnwindChangeArgs) Kind() string { return "unwind_change" }

// InsertOpts runs unwinds on the SCCM queue (they delete and disable
// deployments there), one pending per change.
func (UnwindChangeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSCCM, UniqueOpts: changeUniqueOpts()}
}
