package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/autopatch/autopatch/internal/ledger"
)

// TestNotesNameTheTenantsPaths: the compliance note of a file tenant's
// change sends the reader to the tenant's API and CLI, and the default
// tenant's note is today's.
func TestNotesNameTheTenantsPaths(t *testing.T) {
	t.Parallel()
	l := ledger.Ledger{Scope: ledger.Scope{Change: "CHG0001"}, AsOf: time.Date(2026, 12, 9, 3, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		tenant, want string
	}{
		{"", "Full ledger: GET /api/v1/compliance?change=CHG0001 or autopatch report --change CHG0001"},
		{"acme", "Full ledger: GET /t/acme/api/v1/compliance?change=CHG0001 or autopatch report --tenant acme --change CHG0001"},
	} {
		got := summaryNote(&Deps{Tenant: tc.tenant}, l, "at its deadline")
		if !strings.HasSuffix(got, tc.want) {
			t.Errorf("tenant %q: the note ends\n%s\nwant\n%s", tc.tenant, got[strings.LastIndex(got, "\n")+1:], tc.want)
		}
	}
	d := &Deps{Tenant: "acme"}
	if got, want := d.apiPath("/api/v1/changes/CHG0001/resume"), "/t/acme/api/v1/changes/CHG0001/resume"; got != want {
		t.Errorf("apiPath = %q, want %q", got, want)
	}
}
