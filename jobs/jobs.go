// Package jobs holds autopatch's River jobs, one file per kind: the args
// (what was asked, stored durably with the job) and the worker (which re-reads
// and locks the rows it acts on, so running twice is safe).
package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/logfilter"
	"github.com/autopatch/autopatch/internal/rollout"
	"github.com/autopatch/autopatch/internal/schedules"
)

// Queues, one per remote system so a slow or failing system cannot hold up
// the others, and small so WinRM's per-user shell limits are respected.
// Windows are not jobs: every replica's WindowKeeper opens and closes them.
const (
	QueueDefault    = river.QueueDefault
	QueueSCCM       = "sccm"
	QueueSCOM       = "scom"
	QueueServiceNow = "servicenow"
)

// SCCM is what the workers ask of the site server (connectors/sccm).
type SCCM interface {
	SetMembership(ctx context.Context, moves []sccm.Move, managed []string) ([]sccm.MoveResult, error)
	CreateDeployments(ctx context.Context, specs []sccm.DeploymentSpec) ([]sccm.Deployment, error)
	OpenDeployments(ctx context.Context, names, collections []string) ([]sccm.EnableResult, error)
	SetEnabled(ctx context.Context, names []string, enabled bool) ([]sccm.EnableResult, error)
	DeleteDeployments(ctx context.Context, names []string) ([]sccm.DeleteResult, error)
	DeploymentStatus(ctx context.Context, names []string) (sccm.StatusReport, error)
	DeviceStates(ctx context.Context, reads []sccm.StateRead) ([]sccm.DeviceState, error)
	ForceWave(ctx context.Context, w sccm.ForceWave) (sccm.ForceResult, error)
}

// SCOM is what the workers ask of the SCOM management server (connectors/scom).
type SCOM interface {
	RaiseAlerts(ctx context.Context, alerts []scom.Alert) ([]scom.RaiseResult, error)
	SetTicket(ctx context.Context, links []scom.TicketLink) ([]scom.UpdateResult, error)
	ResolveAlerts(ctx context.Context, refs []scom.AlertRef, comment string) ([]scom.UpdateResult, error)
}

// ServiceNow is what the workers ask of ServiceNow (connectors/servicenow).
type ServiceNow interface {
	AddWorkNote(ctx context.Context, table, sysID, text string) error
	HasWorkNote(ctx context.Context, table, sysID, text string) (bool, error)
	CreateIncident(ctx context.Context, inc servicenow.Incident) (servicenow.Ref, error)
	FindIncidentsByCorrelation(ctx context.Context, ids []string) (map[string]servicenow.Ref, error)
	ResolveIncident(ctx context.Context, sysID, closeNotes string) error
}

// Deps are what the workers need.
type Deps struct {
	Pool       *pgxpool.Pool
	Logger     *slog.Logger
	Schedules  *schedules.Current
	SCCM       SCCM
	ServiceNow ServiceNow
	Metrics    *Metrics
	// MinRemaining is the least of a window that must be left to open it
	// late (windows shorter than twice this: half the window).
	MinRemaining time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Safety is the service-safety policy (service_safety.go).
	Safety SafetyOptions

	// SCOM raises, links and closes the failures' alerts.
	SCOM SCOM
	// PollInterval is how often status is read while a window is open;
	// zero means DefaultPollInterval.
	PollInterval time.Duration
	// Incidents are the configured fields of failure incidents.
	Incidents IncidentSettings
	// StormThreshold: above this many failures in one window, the others
	// are reported as one storm; zero means DefaultStormThreshold.
	StormThreshold int
	// WindowComputer is the Windows Computer that carries the alerts of a
	// whole window (missed windows, storms); empty means none is raised.
	WindowComputer string
	// ErrorBudget is AUTOPATCH_ERROR_BUDGET, for changes without their
	// own; nil means rollout.DefaultBudget (10%).
	ErrorBudget *rollout.Budget
	// beforeHoldCommit, when set (tests only), runs when a decision made
	// new holds, before its transaction commits: a test makes it fail to
	// stand for a process killed in the middle of the decision.
	beforeHoldCommit func(*Deps) error
	// Compliance times the compliance ledger's reads and deadlines
	// (compliance.go).
	Compliance ComplianceOptions
	// Force sets forced remediation (force_change.go); a zero value
	// forces nothing.
	Force ForceOptions
	// Schema is the PostgreSQL schema of this tenant's River tables
	// (store.OpenSchema's); empty for the default tenant.
	Schema string
	// Tenant is the tenants file's name of this tenant; empty for the
	// default tenant. Notes that point a person at the API or the CLI name
	// the tenant's own path and flag (paths.go).
	Tenant string
	// ClientID names this process to River and to the other replicas
	// (internal/replica); empty lets River choose.
	ClientID string
	// Sites are the SCCM sites of AUTOPATCH_SCCM_SITES (docs/architecture.md
	// §10.1); nil means SCCM is the one site, as before sites existed.
	Sites []Site
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// NewClient builds the River client with every worker registered and the
// queues sized from configuration.
func NewClient(deps *Deps, q config.Queues) (*river.Client[pgx.Tx], error) {
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &PruneEventsWorker{Pool: deps.Pool})
	river.AddWorker(workers, &AssignDevicesWorker{deps: deps})
	river.AddWorker(workers, &PlanChangeWorker{deps: deps})
	river.AddWorker(workers, &UnwindChangeWorker{deps: deps})
	river.AddWorker(workers, &CreateDeploymentsWorker{deps: deps})
	river.AddWorker(workers, &WorkNoteWorker{deps: deps})
	river.AddWorker(workers, &PollStatusWorker{deps: deps})
	river.AddWorker(workers, &FailureAlertsWorker{deps: deps})
	river.AddWorker(workers, &FailureIncidentsWorker{deps: deps})
	river.AddWorker(workers, &SweepFailuresWorker{deps: deps})
	river.AddWorker(workers, &HoldChangeWorker{deps: deps})
	river.AddWorker(workers, &ComplianceSweepWorker{deps: deps})
	river.AddWorker(workers, &RefreshLedgerWorker{deps: deps})
	river.AddWorker(workers, &ForceChangeWorker{deps: deps})
	river.AddWorker(workers, &ForceResultsWorker{deps: deps})

	return river.NewClient(riverpgxv5.New(deps.Pool), &river.Config{
		Logger: logfilter.RiverLogger(deps.Logger), // its 5-second chatter at debug
		Queues: map[string]river.QueueConfig{
			QueueDefault:    {MaxWorkers: q.Default},
			QueueSCCM:       {MaxWorkers: q.SCCM},
			QueueSCOM:       {MaxWorkers: q.SCOM},
			QueueServiceNow: {MaxWorkers: q.ServiceNow},
		},
		Workers: workers,
		// River's own rescue of a job whose client died mid-run. It stays
		// long because a live replica's SCCM call may take minutes and must
		// not run twice; the jobs of a replica that died are taken over
		// within seconds by internal/replica, and windows never wait for a
		// job at all (WindowKeeper).
		RescueStuckJobsAfter: 10 * time.Minute,
		ID:                   deps.ClientID,
		// A tenant's River tables live in its own schema (docs/architecture.md
		// §10.2); empty: the pool's search_path (public), as before tenants.
		Schema: deps.Schema,
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour), func() (river.JobArgs, *river.InsertOpts) {
				return PruneEventsArgs{Retention: 180 * 24 * time.Hour}, nil
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(failureSweepInterval), func() (river.JobArgs, *river.InsertOpts) {
				return SweepFailuresArgs{}, nil
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(deps.Compliance.interval()), func() (river.JobArgs, *river.InsertOpts) {
				return ComplianceSweepArgs{}, nil
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		},
	})
}

// insertTx enqueues a follow-up job in the worker's own transaction, so the
// decision and its consequences commit together.
func insertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	client, err := clientFrom(ctx)
	if err != nil {
		return err
	}
	_, err = client.InsertTx(ctx, tx, args, opts)
	return err
}

// insert enqueues a job outside any transaction.
func insert(ctx context.Context, args river.JobArgs) error {
	client, err := clientFrom(ctx)
	if err != nil {
		return err
	}
	_, err = client.Insert(ctx, args, nil)
	return err
}

type clientKey struct{}

// withClient gives code that runs outside a River worker (the WindowKeeper)
// the client its follow-up jobs are inserted with.
func withClient(ctx context.Context, c *river.Client[pgx.Tx]) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// clientFrom is the River client of a worker's context, or the one
// withClient put there.
func clientFrom(ctx context.Context) (*river.Client[pgx.Tx], error) {
	if c, ok := ctx.Value(clientKey{}).(*river.Client[pgx.Tx]); ok {
		return c, nil
	}
	return river.ClientFromContextSafely[pgx.Tx](ctx)
}
