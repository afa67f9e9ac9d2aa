package estate_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/estate"
)

// The seed of docs/architecture.md §4.5, plus a collection with a maintenance window
// and a device that starts in a collection.
const exampleSeed = `
update_groups: ["2026-12 Servers"]
collections:
  - "Patch - Extra"
  - {name: "Has MW", maintenance_windows: 1}
latency: 0s
devices:
  - {name: SQL01}
  - {name: SQL02, outcome: "error 0x80240022"}
  - {name: WEB01, outcome: silent}
  - {name: APP01, outcome: "error 0x8024402C then success"}
  - {name: OLD01, collections: ["Patch - Old"]}
`

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

type testBundle struct {
	estate *estate.Estate
	clock  *clock
	sccm   *sccm.Client
}

func setup(t *testing.T, mutate func(*estate.Options)) *testBundle {
	t.Helper()
	seed, err := estate.ParseSeed([]byte(exampleSeed))
	require.NoError(t, err)
	clk := &clock{t: time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)}
	opts := estate.Options{
		Seed:                seed,
		ScheduleCollections: []string{"Patch - DB - Sat 02:00", "Patch - Extra"},
		Now:                 clk.Now,
	}
	if mutate != nil {
		mutate(&opts)
	}
	e, err := estate.Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })

	wc, err := winrm.New(e.WinRMConfig(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = wc.Close() })
	return &testBundle{estate: e, clock: clk, sccm: sccm.New(wc, "", nil)}
}

func getState(t *testing.T, e *estate.Estate) []byte {
	t.Helper()
	resp, err := http.Get(e.ControlURL() + "/state")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

func TestEstateOverHTTPS(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	e := b.estate
	ctx := t.Context()

	require.True(t, strings.HasPrefix(e.SCCMEndpoint(), "https://127.0.0.1:"), e.SCCMEndpoint())
	require.True(t, strings.HasSuffix(e.SCCMEndpoint(), "/wsman"))
	require.FileExists(t, e.CAFile())

	// The whole life of a deployment through the estate, checked in /state.
	moved, err := b.sccm.SetMembership(ctx, []sccm.Move{
		{Device: "SQL01", Collection: "Patch - DB - Sat 02:00"},
		{Device: "SQL02", Collection: "Patch - DB - Sat 02:00"},
		{Device: "OLD01", Collection: "Patch - DB - Sat 02:00"},
	}, []string{"Patch - DB - Sat 02:00", "Patch - Old"})
	require.NoError(t, err)
	require.Equal(t, []string{"Patch - Old"}, moved[2].RemovedFrom)
	name := sccm.DeploymentName("CHG0031234", "DB-SAT-0200", "2026-12 Servers")
	start := time.Date(2026, 12, 13, 2, 0, 0, 0, time.UTC)
	_, err = b.sccm.CreateDeployments(ctx, []sccm.DeploymentSpec{{
		Name: name, Collection: "Patch - DB - Sat 02:00", UpdateGroup: "2026-12 Servers",
		Available: start, Deadline: start,
	}})
	require.NoError(t, err)
	_, err = b.sccm.SetEnabled(ctx, []string{name}, true)
	require.NoError(t, err)
	mw, err := b.sccm.CollectionsWithMaintenanceWindows(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"Has MW"}, mw)

	raw := getState(t, e)

	// The contract's shape: exactly these top-level keys, empty parts as [].
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &top))
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	require.Equal(t, []string{"alerts", "collections", "deployments", "incidents", "work_notes"}, keys)
	for _, k := range []string{"alerts", "incidents", "work_notes"} {
		require.JSONEq(t, "[]", string(top[k]), k)
	}

	var st struct {
		Collections []struct {
			Name    string   `json:"name"`
			Members []string `json:"members"`
		} `json:"collections"`
		Deployments []struct {
			Name        string `json:"name"`
			Collection  string `json:"collection"`
			UpdateGroup string `json:"update_group"`
			CreatedAt   string `json:"created_at"`
			Deleted     *bool  `json:"deleted"`
			Events      []struct {
				At      string `json:"at"`
				Enabled *bool  `json:"enabled"`
			} `json:"events"`
		} `json:"deployments"`
	}
	require.NoError(t, json.Unmarshal(raw, &st))
	members := map[string][]string{}
	var names []string
	for _, c := range st.Collections {
		require.NotNil(t, c.Members, "members is an array, never null")
		members[c.Name] = c.Members
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"Patch - Extra", "Has MW", "Patch - DB - Sat 02:00", "Patch - Old"}, names,
		"seed collections, then schedule collections (each once), then the devices'")
	require.Equal(t, []string{"SQL01", "SQL02", "OLD01"}, members["Patch - DB - Sat 02:00"])
	require.Empty(t, members["Patch - Old"])

	require.Len(t, st.Deployments, 1)
	d := st.Deployments[0]
	require.Equal(t, name, d.Name)
	require.Equal(t, "Patch - DB - Sat 02:00", d.Collection)
	require.Equal(t, "2026-12 Servers", d.UpdateGroup)
	require.Equal(t, "2026-12-12T20:00:00Z", d.CreatedAt, "RFC 3339, UTC")
	require.NotNil(t, d.Deleted)
	require.False(t, *d.Deleted)
	require.Len(t, d.Events, 1)
	require.Equal(t, "2026-12-12T20:00:00Z", d.Events[0].At)
	require.True(t, *d.Events[0].Enabled)

	// /state is the estate's State.
	want, err := json.Marshal(e.State())
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(raw))
}

func TestEstateChecksCertificatesAndCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	e := b.estate

	tests := []struct {
		name   string
		mutate func(*winrm.Config)
		want   error
	}{
		{"NoCAFile", func(c *winrm.Config) { c.CAFile = "" }, winrm.ErrUnreachable},
		{"WrongPassword", func(c *winrm.Config) { c.Password = "guess" }, winrm.ErrUnauthorized},
		{"WrongUser", func(c *winrm.Config) { c.User = "administrator" }, winrm.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := e.WinRMConfig()
			tt.mutate(&cfg)
			wc, err := winrm.New(cfg, nil)
			require.NoError(t, err)
			defer wc.Close()
			_, err = sccm.New(wc, "", nil).CollectionsWithMaintenanceWindows(t.Context())
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestEstateRefusesNonTemplates(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	wc, err := winrm.New(b.estate.WinRMConfig(), nil)
	require.NoError(t, err)
	defer wc.Close()

	err = wc.Run(t.Context(), winrm.Template{Name: "evil", Script: "param($Data)\nGet-Process\n"}, nil, nil)
	var se *winrm.ScriptError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Contains(t, se.Stderr, "approved script templates")
	require.Equal(t, 1, b.estate.WSMan().Stats().Executions)
	require.Zero(t, b.estate.SCCM().Calls(), "the estate refused it before any simulator saw it")
	require.Zero(t, b.estate.SCOM().Calls())
}

func TestEstateWinRMDown(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.estate.SetWinRMDown(true)
	_, err := b.sccm.ResolveDevices(t.Context(), []string{"SQL01"})
	require.ErrorIs(t, err, winrm.ErrUnreachable)
	require.Zero(t, b.estate.SCCM().Calls())

	b.estate.SetWinRMDown(false)
	res, err := b.sccm.ResolveDevices(t.Context(), []string{"SQL01"})
	require.NoError(t, err)
	require.Contains(t, res.ResourceIDs, "SQL01")
}

// TestEstateFault: POST /fault on the control port takes WinRM or
// ServiceNow down for a while, as the crash suite does.
func TestEstateFault(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	post := func(body string) int {
		resp, err := http.Post(b.estate.ControlURL()+"/fault", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	snowStatus := func() int {
		resp, err := http.Get(b.estate.ServiceNowURL() + "/api/now/table/incident")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusBadRequest, post(`{"winrm":"sideways"}`))
	require.Equal(t, http.StatusBadRequest, post(`{"winrm":"down","for":"soon"}`))

	require.Equal(t, http.StatusNoContent, post(`{"winrm":"down","servicenow":"down","for":"300ms"}`))
	_, err := b.sccm.ResolveDevices(t.Context(), []string{"SQL01"})
	require.ErrorIs(t, err, winrm.ErrUnreachable)
	require.Equal(t, http.StatusServiceUnavailable, snowStatus())

	require.Eventually(t, func() bool { return snowStatus() != http.StatusServiceUnavailable }, 5*time.Second, 50*time.Millisecond)
	_, err = b.sccm.ResolveDevices(t.Context(), []string{"SQL01"})
	require.NoError(t, err)
}

func TestEstatePlainHTTPAndEnvFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, func(o *estate.Options) { o.PlainHTTP = true })
	e := b.estate

	require.True(t, strings.HasPrefix(e.SCCMEndpoint(), "http://127.0.0.1:"))
	require.Empty(t, e.CAFile())
	_, err := b.sccm.ResolveDevices(t.Context(), []string{"SQL01"})
	require.NoError(t, err)

	path := filepath.Join(dir, "sim.env")
	require.NoError(t, e.WriteEnvFile(path))
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	env := readEnv(t, path)
	require.Equal(t, map[string]string{
		"AUTOPATCH_SCCM_ENDPOINT":       e.SCCMEndpoint(),
		"AUTOPATCH_SCCM_USER":           e.User(),
		"AUTOPATCH_SCCM_PASSWORD":       e.Password(),
		"AUTOPATCH_SCCM_AUTH":           "basic",
		"AUTOPATCH_SCOM_ENDPOINT":       e.SCOMEndpoint(),
		"AUTOPATCH_SCOM_USER":           e.User(),
		"AUTOPATCH_SCOM_PASSWORD":       e.Password(),
		"AUTOPATCH_SCOM_AUTH":           "basic",
		"AUTOPATCH_SERVICENOW_URL":      e.ServiceNowURL(),
		"AUTOPATCH_SERVICENOW_USER":     e.ServiceNowUser(),
		"AUTOPATCH_SERVICENOW_PASSWORD": e.ServiceNowPassword(),
		"AUTOPATCH_WEBHOOK_SECRET":      e.WebhookSecret(),
		"AUTOPATCH_API_TOKEN":           e.APIToken(),
		"AUTOPATCH_SIM_URL":             e.ControlURL(),
	}, env)
	require.Equal(t, e.SCCMEndpoint(), e.SCOMEndpoint(), "one WinRM listener plays both servers")
}

func TestEstateEnvFileOverHTTPS(t *testing.T) {
	t.Parallel()
	b1 := setup(t, nil)
	b2 := setup(t, nil)
	path := filepath.Join(t.TempDir(), "sim.env")
	require.NoError(t, b1.estate.WriteEnvFile(path))
	env := readEnv(t, path)

	require.Equal(t, b1.estate.CAFile(), env["AUTOPATCH_SCCM_CA_FILE"])
	require.Equal(t, b1.estate.CAFile(), env["AUTOPATCH_SCOM_CA_FILE"])
	require.True(t, strings.HasPrefix(env["AUTOPATCH_SERVICENOW_URL"], "http://127.0.0.1:"),
		"ServiceNow is plain HTTP on loopback: the configuration has no CA for it")
	pem, err := os.ReadFile(env["AUTOPATCH_SCCM_CA_FILE"])
	require.NoError(t, err)
	require.Equal(t, b1.estate.CAPEM(), pem)

	// What the env file says is enough to reach the site.
	wc, err := winrm.New(winrm.Config{
		Endpoint: env["AUTOPATCH_SCCM_ENDPOINT"], User: env["AUTOPATCH_SCCM_USER"],
		Password: env["AUTOPATCH_SCCM_PASSWORD"], Auth: env["AUTOPATCH_SCCM_AUTH"],
		CAFile: env["AUTOPATCH_SCCM_CA_FILE"],
	}, nil)
	require.NoError(t, err)
	defer wc.Close()
	_, err = sccm.New(wc, "", nil).ResolveDevices(t.Context(), []string{"SQL01"})
	require.NoError(t, err)

	// Secrets are made up per run.
	for _, pair := range [][2]string{
		{b1.estate.Password(), b2.estate.Password()},
		{b1.estate.ServiceNowPassword(), b2.estate.ServiceNowPassword()},
		{b1.estate.WebhookSecret(), b2.estate.WebhookSecret()},
		{b1.estate.APIToken(), b2.estate.APIToken()},
	} {
		require.GreaterOrEqual(t, len(pair[0]), 32)
		require.NotEqual(t, pair[0], pair[1])
	}
	require.NotEqual(t, b1.estate.Password(), b1.estate.APIToken())
}

func TestEstateHostileNamesThroughState(t *testing.T) {
	t.Parallel()
	hostile := []string{
		`<script>alert("x")</script>`, "O'Brien & \"Sons\"", "$(Stop-Computer)", "line\nbreak",
		"\u2028sep\u2029", "tab\there", "😀", `\u0041 not an escape`, "nul\x00",
	}
	b := setup(t, func(o *estate.Options) {
		o.Seed.UpdateGroups = append(o.Seed.UpdateGroups, hostile...)
		o.ScheduleCollections = append(o.ScheduleCollections, hostile...)
		for _, h := range hostile {
			o.Seed.Devices = append(o.Seed.Devices, estate.SeedDevice{Name: h})
		}
	})
	ctx := t.Context()
	var moves []sccm.Move
	var specs []sccm.DeploymentSpec
	start := b.clock.Now()
	for i, h := range hostile {
		moves = append(moves, sccm.Move{Device: h, Collection: hostile[len(hostile)-1-i]})
		specs = append(specs, sccm.DeploymentSpec{Name: h, Collection: h, UpdateGroup: h, Available: start, Deadline: start})
	}
	_, err := b.sccm.SetMembership(ctx, moves, hostile)
	require.NoError(t, err)
	_, err = b.sccm.CreateDeployments(ctx, specs)
	require.NoError(t, err)

	var st estate.State
	require.NoError(t, json.Unmarshal(getState(t, b.estate), &st))
	members := map[string][]string{}
	for _, c := range st.Collections {
		members[c.Name] = c.Members
	}
	for i, h := range hostile {
		require.Equal(t, []string{hostile[len(hostile)-1-i]}, members[h], "%q", h)
		d := st.Deployments[i]
		require.Equal(t, []string{h, h, h}, []string{d.Name, d.Collection, d.UpdateGroup})
	}
}

func TestEstateCloseRemovesItsFiles(t *testing.T) {
	t.Parallel()
	e, err := estate.Start(t.Context(), estate.Options{})
	require.NoError(t, err)
	ca := e.CAFile()
	require.FileExists(t, ca)
	require.NoError(t, e.Close())
	require.NoFileExists(t, ca)
	require.NoError(t, e.Close(), "twice is fine")
	_, err = http.Get(e.ControlURL() + "/state")
	require.Error(t, err, "stopped listening")
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, line)
		require.NotContains(t, env, k)
		env[k] = v
	}
	require.NoError(t, sc.Err())
	return env
}
