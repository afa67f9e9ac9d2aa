package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/store"
)

// The fuzz tests' oracle: the rules of issue 5, written again here
// independently of validate.go, that every accepted body must satisfy.
var (
	oracleChange  = regexp.MustCompile(`^CHG\d{7,}$`)
	oracleRITM    = regexp.MustCompile(`^RITM\d{7,}$`)
	oracleSysID   = regexp.MustCompile(`^[a-f0-9]{32}$`)
	oracleNetBIOS = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,14}$`)
	oracleDigits  = regexp.MustCompile(`^\d+$`)
	oracleLabel   = `[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?`
	oracleDNS     = regexp.MustCompile(`^` + oracleLabel + `(\.` + oracleLabel + `)+$`)
	oraclePath    = regexp.MustCompile(`^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*$`)
	fuzzSchedules = map[string]bool{"DB-SAT-0200": true, "WEB-3RD-SUN": true}
)

func fuzzLookup(_ context.Context, names []string) ([]string, error) {
	var unknown []string
	for _, n := range names {
		if !fuzzSchedules[n] {
			unknown = append(unknown, n)
		}
	}
	return unknown, nil
}

func oracleTime(t *testing.T, field, s string) time.Time {
	t.Helper()
	for _, layout := range []string{"2006-01-02 15:04:05", time.RFC3339Nano} {
		if v, err := time.Parse(layout, s); err == nil {
			require.True(t, v.Year() >= 1970 && v.UTC().Year() <= 9999, "%s: %q", field, s)
			return v
		}
	}
	t.Fatalf("%s: accepted %q, which is not a date", field, s)
	return time.Time{}
}

// oracleText: no control, format or line/paragraph separator characters.
func oracleText(t *testing.T, field, s string, multiline bool) {
	t.Helper()
	require.True(t, utf8.ValidString(s), field)
	for _, r := range s {
		if multiline && (r == '\t' || r == '\n' || r == '\r') {
			continue
		}
		require.False(t, unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp), "%s: %q has %U", field, s, r)
	}
}

func oracleDevice(name string) bool {
	if strings.Contains(name, ".") {
		return len(name) <= 253 && oracleDNS.MatchString(name)
	}
	return oracleNetBIOS.MatchString(name) && !oracleDigits.MatchString(name)
}

// requireRefusal: a refusal is a 400 with a code and at least one detail,
// each naming a JSON path (or the whole body) and saying what is wrong.
func requireRefusal(t *testing.T, apiErr *APIError) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, apiErr.Status)
	require.Contains(t, []string{"bad_json", "validation_failed"}, apiErr.Code)
	require.NotEmpty(t, apiErr.Details)
	require.LessOrEqual(t, len(apiErr.Details), maxDetails+1)
	for _, d := range apiErr.Details {
		require.NotEmpty(t, d.Message)
		require.True(t, d.Field == "" || oraclePath.MatchString(d.Field), "field %q", d.Field)
	}
	_, err := json.Marshal(apiErr)
	require.NoError(t, err)
}

func FuzzChangeWebhook(f *testing.F) {
	f.Add(changeBody(nil))
	f.Add(changeBody(func(_, c, p jsonObject) {
		c["start_date"] = "2026-12-12T20:00:00+01:00"
		p["schedules"] = []any{"DB-SAT-0200", "WEB-3RD-SUN"}
	}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, c, apiErr, err := parseChange(context.Background(), raw, fuzzLookup)
		require.NoError(t, err)
		if apiErr != nil {
			requireRefusal(t, apiErr)
			return
		}
		require.NotNil(t, req)
		ch, p := req.Change, req.Patching
		require.Regexp(t, oracleChange, ch.Number)
		require.Regexp(t, oracleSysID, ch.SysID)
		for field, v := range map[string]string{"state": ch.State, "approval": ch.Approval, "type": ch.Type, "event_id": req.EventID} {
			oracleText(t, field, v, false)
		}
		require.NotEmpty(t, ch.State)
		require.NotEmpty(t, ch.Approval)
		oracleText(t, "short_description", ch.ShortDescription, true)
		start := oracleTime(t, "start_date", ch.StartDate)
		end := oracleTime(t, "end_date", ch.EndDate)
		updated := oracleTime(t, "sys_updated_on", ch.SysUpdatedOn)
		require.True(t, end.After(start), "end %v not after start %v", end, start)

		require.True(t, len(p.SoftwareUpdateGroups) >= 1 && len(p.SoftwareUpdateGroups) <= 100)
		seen := map[string]bool{}
		for _, g := range p.SoftwareUpdateGroups {
			n := utf8.RuneCountInString(g)
			require.True(t, n >= 1 && n <= 256, "%q", g)
			require.Equal(t, strings.TrimSpace(g), g)
			oracleText(t, "update group", g, false)
			require.False(t, seen[strings.ToLower(g)], "duplicate %q", g)
			seen[strings.ToLower(g)] = true
		}
		if p.Schedules != nil {
			require.NotEmpty(t, p.Schedules)
			seen := map[string]bool{}
			for _, s := range p.Schedules {
				require.True(t, fuzzSchedules[s], "unknown schedule %q accepted", s)
				require.False(t, seen[s])
				seen[s] = true
			}
		}

		// What is stored is what was validated.
		require.Equal(t, store.Change{
			Number: ch.Number, SysID: ch.SysID, State: ch.State, Approval: ch.Approval,
			Start: start.UTC().Truncate(time.Microsecond), End: end.UTC().Truncate(time.Microsecond),
			UpdateGroups: p.SoftwareUpdateGroups, Schedules: p.Schedules,
			ShortDescription: ch.ShortDescription, SysUpdatedOn: updated.UTC().Truncate(time.Microsecond),
			Classification: classification(p.Classification), Deadline: deadlineOf(p.Deadline),
		}, c)

		// The stored payload is itself a valid body that means the same.
		payload, err := json.Marshal(req)
		require.NoError(t, err)
		req2, c2, apiErr, err := parseChange(context.Background(), payload, fuzzLookup)
		require.NoError(t, err)
		require.Nil(t, apiErr, "stored payload refused: %s", payload)
		require.Equal(t, req, req2)
		require.Equal(t, c, c2)
	})
}

func FuzzScheduleRequestWebhook(f *testing.F) {
	f.Add(scheduleRequestBody(nil))
	f.Add(scheduleRequestBody(func(body, item jsonObject, d []jsonObject) []jsonObject {
		delete(body, "event_id")
		item["sys_updated_on"] = "2026-12-01T09:00:00Z"
		return append(d, jsonObject{"name": "APP_01", "service": "Portal", "tier": "middle"})
	}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, apiErr, err := parseScheduleRequest(context.Background(), raw, fuzzLookup)
		require.NoError(t, err)
		if apiErr != nil {
			requireRefusal(t, apiErr)
			return
		}
		require.Regexp(t, oracleRITM, req.RequestItem.Number)
		require.Regexp(t, oracleSysID, req.RequestItem.SysID)
		require.NotEmpty(t, req.RequestedFor)
		oracleText(t, "requested_for", req.RequestedFor, false)
		oracleText(t, "event_id", req.EventID, false)
		require.True(t, fuzzSchedules[req.Schedule], "unknown schedule %q accepted", req.Schedule)
		require.True(t, len(req.Devices) >= 1 && len(req.Devices) <= 5000)
		seen := map[string]bool{}
		for _, d := range req.Devices {
			require.True(t, oracleDevice(d.Name), "device name %q accepted", d.Name)
			require.False(t, seen[strings.ToLower(d.Name)], "duplicate device %q", d.Name)
			seen[strings.ToLower(d.Name)] = true
			require.NotEmpty(t, d.Service)
			oracleText(t, "service", d.Service, false)
			require.Contains(t, []string{"backend", "middle", "frontend"}, d.Tier)
		}

		payload, err := json.Marshal(req)
		require.NoError(t, err)
		req2, apiErr, err := parseScheduleRequest(context.Background(), payload, fuzzLookup)
		require.NoError(t, err)
		require.Nil(t, apiErr, "stored payload refused: %s", payload)
		require.Equal(t, req, req2)
	})
}

// classification is what a change stores for patching.classification:
// normal when omitted.
func classification(s string) string {
	if s == "" {
		return "normal"
	}
	return s
}

// deadlineOf is what a change stores for patching.deadline.
func deadlineOf(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := parseTime(s)
	if err != nil {
		panic(err)
	}
	return &t
}
