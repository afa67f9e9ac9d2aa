package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchSchedules writes 24 schedules: 18 on Patch Tuesday offsets (placed
// by the monthly change) and 6 on the third or fourth Sunday (often
// unplaceable), across six zones with and without DST.
func benchSchedules() []byte {
	zones := []string{"Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "Europe/Berlin", "UTC"}
	var b strings.Builder
	b.WriteString("schedules:\n")
	for i := range 24 {
		zone := zones[i%len(zones)]
		fmt.Fprintf(&b, "  - name: S%02d-%s\n    collection: \"Patch - S%02d\"\n    timezone: %s\n", i, strings.ToUpper(zone[:3]), i, zone)
		if i < 18 {
			fmt.Fprintf(&b, "    recurrence: {anchor: patch_tuesday, offset_days: %d}\n", 1+i%6)
		} else {
			fmt.Fprintf(&b, "    recurrence: {anchor: nth_weekday, nth: %d, weekday: sunday}\n", 3+i%2)
		}
		fmt.Fprintf(&b, "    start: \"%02d:00\"\n    duration: 4h\n", (i*3)%24)
	}
	return []byte(b.String())
}

// BenchmarkPages measures the server time of each console page over 8,000
// devices on 24 schedules with 12 months of history (a change a month,
// every device's result in every window, failures with incidents): the
// figures docs/architecture.md §9.5's console promises to keep under 100 ms.
func BenchmarkPages(b *testing.B) {
	start := time.Now()
	sc := seedScenario(b, scenarioOpts{SchedulesYAML: benchSchedules(), Devices: 8000, Months: 12, Now: scenarioNow})
	b.Logf("seeded 8000 devices, 24 schedules, 12 months in %s", time.Since(start).Round(time.Millisecond))
	e := newServer(b, sc, func(context.Context) ([]string, error) { return []string{"Patch - S01", "Finance freeze"}, nil })
	cookie := &http.Cookie{Name: SessionCookie, Value: newSessionKeys(testToken, "").sign(sc.now.Add(time.Hour).Unix())}
	device := sc.devices[len(sc.devices)/2]
	for _, p := range []struct{ name, path string }{
		{"Calendar", "/ui/calendar?month=2026-12"},
		{"CalendarUTC", "/ui/calendar?month=2026-10&tz=UTC"},
		{"Week", "/ui/calendar/week?week=2026-12-12"},
		{"Changes", "/ui/changes"},
		{"Change", "/ui/changes/" + sc.currentChange},
		{"Failures", "/ui/failures"},
		{"FailuresOpen", "/ui/failures?state=open"},
		{"Devices", "/ui/devices"},
		{"DeviceSearch", "/ui/devices?q=s07"},
		{"Device", "/ui/devices/" + url.PathEscape(device)},
		{"Services", "/ui/services"},
		{"Service", "/ui/services/Payroll"},
		{"Collections", "/ui/collections"},
		{"Compliance", "/ui/compliance?cycle=2026-11"},
		{"APIWindows", "/api/v1/windows?from=2026-12-01T00:00:00Z&to=2027-01-01T00:00:00Z&limit=500"},
		{"APIChanges", "/api/v1/changes"},
		{"APIDevices", "/api/v1/devices?limit=500"},
		{"APIFailures", "/api/v1/failures?limit=500"},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, p.path, nil)
				req.AddCookie(cookie)
				req.Header.Set("Authorization", "Bearer "+testToken)
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					require.Equal(b, http.StatusOK, rec.Code, "%s: %s", p.path, rec.Body.String())
				}
			}
		})
	}
}
