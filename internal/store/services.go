package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ServiceMember is a managed device as the service-safety checks see it:
// its service, tier and schedule.
type ServiceMember struct {
	Device   string
	Service  string
	Tier     string
	Schedule string
}

// ServiceMembers returns the managed devices (those with a schedule, a
// service and a tier) of the services whose keys are given (trimmed, lower
// case: safety.ServiceKey), and of the devices named (case-insensitively),
// whatever their service: the devices a schedule request moves may leave
// another service. Sorted by service key, tier, name.
func ServiceMembers(ctx context.Context, db DBTX, serviceKeys, devices []string) ([]ServiceMember, error) {
	lower := make([]string, len(devices))
	for i, d := range devices {
		lower[i] = strings.ToLower(d)
	}
	rows, err := db.Query(ctx, `SELECT name, service, tier, schedule_name FROM devices
		WHERE schedule_name IS NOT NULL AND service IS NOT NULL AND tier IS NOT NULL
		  AND (lower(btrim(service)) = ANY($1) OR lower(name) = ANY($2))
		ORDER BY lower(btrim(service)), tier, lower(name)`, serviceKeys, lower)
	if err != nil {
		return nil, fmt.Errorf("store: service members: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ServiceMember, error) {
		var m ServiceMember
		err := r.Scan(&m.Device, &m.Service, &m.Tier, &m.Schedule)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: service members: %w", err)
	}
	return out, nil
}

// ServiceCount is how many managed devices of a service and tier are on a
// schedule.
type ServiceCount struct {
	Service  string
	Tier     string
	Schedule string
	Devices  int
}

// ServiceCounts counts every managed device by service, tier and schedule:
// all a plan-time check of the whole estate needs, in one aggregate rather
// than a row per device. Sorted by service, so consecutive rows share it.
func ServiceCounts(ctx context.Context, db DBTX) ([]ServiceCount, error) {
	rows, err := db.Query(ctx, `SELECT service, tier, schedule_name, count(*) FROM devices
		WHERE schedule_name IS NOT NULL AND service IS NOT NULL AND tier IS NOT NULL
		GROUP BY service, tier, schedule_name ORDER BY service, tier, schedule_name`)
	if err != nil {
		return nil, fmt.Errorf("store: service counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ServiceCount, error) {
		var c ServiceCount
		err := r.Scan(&c.Service, &c.Tier, &c.Schedule, &c.Devices)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: service counts: %w", err)
	}
	return out, nil
}

// LockServices serialises the schedule requests that touch the same
// services: it takes a session advisory lock per service key (sorted, so
// two callers never wait on each other in a cycle) on a connection of its
// own, held until unlock is called. A check of a request and the
// assignments that follow it are then never interleaved with another
// request's for the same service, even across replicas. A process that dies
// holding them loses its connection, and the locks with it.
func LockServices(ctx context.Context, pool *pgxpool.Pool, serviceKeys []string) (unlock func(), err error) {
	keys := slices.Clone(serviceKeys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: lock services: %w", err)
	}
	unlock = func() {
		// A connection whose locks cannot be released must not go back
		// to the pool still holding them.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock_all()`); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}
	for _, k := range keys {
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('autopatch:service:' || $1, 0))`, k); err != nil {
			unlock()
			return nil, fmt.Errorf("store: lock service %q: %w", k, err)
		}
	}
	return unlock, nil
}
