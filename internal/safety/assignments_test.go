package safety

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseAssignments(t *testing.T) {
	t.Parallel()
	known := func(s string) bool { return s == "DB" || s == "WEB" }
	as, err := ParseAssignments([]byte(`devices:
  - {name: SQL01, service: Payroll, tier: backend, schedule: DB}
  - name: WEB01
    service: Payroll
    tier: frontend
    schedule: WEB
`), known)
	require.NoError(t, err)
	require.Equal(t, []Assignment{dev("SQL01", "Payroll", Backend, "DB"), dev("WEB01", "Payroll", Frontend, "WEB")}, as)

	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"Empty", "", []string{"the file is empty"}},
		{"NoDevices", "hosts: []\n", []string{"hosts: unknown key (want devices) (line 1)", "devices: required"}},
		{"BadTier", "devices:\n  - {name: A, service: S, tier: top, schedule: DB}\n",
			[]string{`devices[0] "A": tier: want backend, middle or frontend, got "top" (line 2)`}},
		{"UnknownSchedule", "devices:\n  - {name: A, service: S, tier: middle, schedule: NOPE}\n",
			[]string{`devices[0] "A": schedule: no schedule "NOPE" in the schedules file (line 2)`}},
		{"Missing", "devices:\n  - {name: A, tier: middle, schedule: DB}\n", []string{`devices[0] "A": service: required (line 2)`}},
		{"Typo", "devices:\n  - {name: A, service: S, tier: middle, schedule: DB, shedule: DB}\n",
			[]string{"devices[0]: shedule: unknown key"}},
		{"Duplicate", "devices:\n  - {name: A, service: S, tier: middle, schedule: DB}\n  - {name: a, service: S, tier: middle, schedule: DB}\n",
			[]string{`devices[1] "a": name: devices[0] has the same name (line 3)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseAssignments([]byte(tc.yaml), known)
			require.Error(t, err)
			var fe *FileError
			if !errors.As(err, &fe) {
				require.Len(t, tc.want, 1)
				require.Contains(t, err.Error(), tc.want[0])
				return
			}
			errs := errors.Unwrap(err).(interface{ Unwrap() []error }).Unwrap()
			require.Len(t, errs, len(tc.want), err.Error())
			for i, w := range tc.want {
				require.Contains(t, errs[i].Error(), w)
			}
		})
	}
}
