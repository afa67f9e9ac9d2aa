package safety

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseServices(t *testing.T) {
	t.Parallel()
	s, err := ParseServices([]byte("services:\n  - name: Payroll\n    max_unavailable: 1\n  - {name: \" Web Shop \", max_unavailable: 3}\n"))
	require.NoError(t, err)
	require.Equal(t, []ServiceRule{{"Payroll", 1}, {"Web Shop", 3}}, s.Rules())
	for _, tc := range []struct {
		name string
		want int
		ok   bool
	}{{"Payroll", 1, true}, {"PAYROLL", 1, true}, {" web shop", 3, true}, {"HR", 0, false}} {
		n, ok := s.MaxUnavailable(tc.name)
		require.Equal(t, tc.ok, ok, tc.name)
		require.Equal(t, tc.want, n, tc.name)
	}
	var none *Services
	_, ok := none.MaxUnavailable("Payroll")
	require.False(t, ok, "no file: no rules")

	empty, err := ParseServices([]byte("services: []\n"))
	require.NoError(t, err)
	require.Empty(t, empty.Rules())
}

func TestParseServicesErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       []string // one message per problem, in order
	}{
		{"Empty", "", []string{"the file is empty"}},
		{"NotAMapping", "- a\n", []string{"want a mapping with the key services"}},
		{"UnknownTopKey", "services: []\nservice: []\n", []string{`service: unknown key (want services) (line 2)`}},
		{"Missing", "other: 1\n", []string{"other: unknown key", "services: required"}},
		{"NotAList", "services: {name: x}\n", []string{"services: want a list (line 1)"}},
		{"Zero", "services:\n  - name: Payroll\n    max_unavailable: 0\n",
			[]string{`services[0] "Payroll": max_unavailable: want a whole number of at least 1, got "0" (line 3)`}},
		{"NotANumber", "services:\n  - {name: Payroll, max_unavailable: one}\n",
			[]string{`services[0] "Payroll": max_unavailable: want a whole number of at least 1, got "one" (line 2)`}},
		{"Fraction", "services:\n  - {name: Payroll, max_unavailable: 1.5}\n",
			[]string{`services[0] "Payroll": max_unavailable: want a whole number`}},
		{"QuotedNumber", "services:\n  - {name: Payroll, max_unavailable: \"2\"}\n",
			[]string{`services[0] "Payroll": max_unavailable: want a whole number`}},
		{"NoName", "services:\n  - {max_unavailable: 1}\n", []string{"services[0]: name: required (line 2)"}},
		{"NoMax", "services:\n  - {name: HR}\n", []string{`services[0] "HR": max_unavailable: required (line 2)`}},
		{"Typo", "services:\n  - {name: HR, max_unavailble: 1, max_unavailable: 1}\n",
			[]string{`services[0]: max_unavailble: unknown key (want name, max_unavailable) (line 2)`}},
		{"Duplicate", "services:\n  - {name: HR, max_unavailable: 1}\n  - {name: hr, max_unavailable: 2}\n",
			[]string{`services[1] "hr": name: services[0] names the same service (line 3)`}},
		{"Several", "services:\n  - {name: A, max_unavailable: 0}\n  - {name: '', max_unavailable: 1}\n",
			[]string{`services[0] "A": max_unavailable`, "services[1]: name: want a service name (line 3)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseServices([]byte(tc.yaml))
			require.Error(t, err)
			var fe *FileError
			if errors.As(err, &fe) {
				joined, ok := errors.Unwrap(err).(interface{ Unwrap() []error })
				require.True(t, ok)
				errs := joined.Unwrap()
				require.Len(t, errs, len(tc.want), err.Error())
				for i, w := range tc.want {
					require.Contains(t, errs[i].Error(), w)
				}
				return
			}
			require.Len(t, tc.want, 1)
			require.Contains(t, err.Error(), tc.want[0])
		})
	}
}

func TestCurrentServices(t *testing.T) {
	t.Parallel()
	var c CurrentServices
	require.Nil(t, c.Get())
	s, err := ParseServices([]byte("services: [{name: A, max_unavailable: 2}]"))
	require.NoError(t, err)
	c.Set(s)
	n, ok := c.Get().MaxUnavailable("a")
	require.True(t, ok)
	require.Equal(t, 2, n)
}

func TestParseTier(t *testing.T) {
	t.Parallel()
	for _, tier := range Tiers {
		got, err := ParseTier(string(tier))
		require.NoError(t, err)
		require.Equal(t, tier, got)
	}
	_, err := ParseTier("Backend")
	require.ErrorContains(t, err, "want backend, middle or frontend")
}
