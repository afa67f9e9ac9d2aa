package jobs

import (
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// PlanChangeArgs asks for the plan of a change to be (re)computed from the
// changes row as it is when the job runs: the webhook that enqueues it has
// already stored the change's dates, update groups and schedules.
//
// Uniqueness collapses a burst of deliveries into one pending job. River
// requires running among the unique states, so a delivery that arrives while
// a plan_change of the same change runs is NOT enqueued again. The webhook
// bumps changes.revision for every plan or unwind it asks for; the worker
// must therefore read the revision with the row, and, in the transaction
// that records its result, check that the revision is still the one it read
// (SELECT … FOR UPDATE). If it moved on, the work was done on an older
// version: roll back and return river.JobSnooze so the job runs again on the
// new one. That way no re-plan is ever lost.
type PlanChangeArgs struct {
	ChangeNumber string `json:"change_number"`
}

// Kind implements river.JobArgs.
func (PlanChangeArgs) Kind() string { return "plan_change" }

// InsertOpts makes one pending plan_change per change.
func (PlanChangeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, UniqueOpts: changeUniqueOpts()}
}

// changeUniqueOpts is the uniqueness of jobs about one change: by args (the
// change number), among jobs that have not started yet or are running.
// Completed jobs are left out (River's default keeps them for a day, which
// would swallow a re-plan the next morning), and so is retryable: a job
// waiting out a long backoff must not delay a fresh request.
func changeUniqueOpts() river.UniqueOpts {
	return river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable,
			rivertype.JobStatePending,
			rivertype.JobStateRunning, // required by River
			rivertype.JobStateScheduled,
		},
	}
}
