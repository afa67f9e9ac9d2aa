package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// exportedMetrics collects the metric names autopatch's code registers (the
// "autopatch_…" string literals outside tests), with the series a histogram
// adds.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(autopatch_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "../.." || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				names[m[1]+suffix] = true
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Contains(t, names, "autopatch_windows_missed_total")
	return names
}

var metricRef = regexp.MustCompile(`\bautopatch_[a-z0-9_]+`)

// selectorRef is a metric name in a query and what follows it.
var selectorRef = regexp.MustCompile(`\b(autopatch_[a-z0-9_]+)(\S*)`)

// TestObservabilityDashboard: the Grafana dashboard is JSON Grafana can
// provision, and every query names metrics autopatch exports.
func TestObservabilityDashboard(t *testing.T) {
	t.Parallel()
	metrics := exportedMetrics(t)
	b, err := os.ReadFile("../../integrations/observability/grafana/autopatch.dashboard.json")
	require.NoError(t, err)
	var dash struct {
		UID, Title string
		Templating struct {
			List []struct{ Name, Type, Query string }
		}
		Panels []struct {
			ID      int
			Type    string
			Title   string
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr       string
				Datasource struct{ Type, UID string }
			}
		}
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	require.Equal(t, "autopatch", dash.UID)
	require.NotEmpty(t, dash.Templating.List)
	require.Equal(t, "datasource", dash.Templating.List[0].Type)
	require.Equal(t, "prometheus", dash.Templating.List[0].Query)
	require.Condition(t, func() bool {
		for _, v := range dash.Templating.List {
			if v.Name == "tenant" {
				return true
			}
		}
		return false
	}, "the dashboard has a tenant variable")

	ids := map[int]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		require.False(t, ids[p.ID], "panel id %d once", p.ID)
		ids[p.ID] = true
		require.Positive(t, p.GridPos.W, p.Title)
		require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, p.Title)
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			require.Equal(t, "${datasource}", tg.Datasource.UID, "%s: the data source variable", p.Title)
			for _, m := range metricRef.FindAllString(tg.Expr, -1) {
				require.True(t, metrics[m], "%s: %s is not a metric autopatch exports", p.Title, m)
			}
			// Every tenant's series are labelled (docs/architecture.md
			// §10.2): a panel that ignored the variable would sum customers.
			for _, ref := range selectorRef.FindAllStringSubmatch(tg.Expr, -1) {
				if ref[1] != "autopatch_build_info" {
					require.True(t, strings.HasPrefix(ref[2], `{tenant=~"$tenant"`), "%s: %s is not scoped by the tenant variable", p.Title, ref[1])
				}
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	// What the dashboard is for: windows, deployments, failures, alerts and
	// incidents, webhooks, queues, the remote systems.
	all := strings.Join(exprs, "\n")
	for _, m := range []string{
		"autopatch_window_open_lag_seconds", "autopatch_window_close_lag_seconds", "autopatch_windows_missed_total",
		"autopatch_deployments", "autopatch_failures_total", "autopatch_scom_alerts_raised_total", "autopatch_incidents_created_total",
		"autopatch_webhook_deliveries_total", "autopatch_jobs", "autopatch_remote_calls_total",
	} {
		require.Regexp(t, regexp.MustCompile(`\b`+m+`(_bucket|_count|_sum)?\b`), all, "the dashboard shows %s", m)
	}

	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	pb, err := os.ReadFile("../../integrations/observability/grafana/provisioning.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(pb, &prov))
	require.Equal(t, 1, prov.APIVersion)
	require.Equal(t, "file", prov.Providers[0].Type)
	require.NotEmpty(t, prov.Providers[0].Options.Path)
}

// TestObservabilityRules: the alerting rules name metrics autopatch exports
// and cover what an operator must hear about. promtool checks their syntax
// and behaviour (make check/observability).
func TestObservabilityRules(t *testing.T) {
	t.Parallel()
	metrics := exportedMetrics(t)
	b, err := os.ReadFile("../../integrations/observability/alerts.rules.yml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	require.NoError(t, yaml.Unmarshal(b, &rules))
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
			for _, m := range metricRef.FindAllString(r.Expr, -1) {
				require.True(t, metrics[m], "%s: %s is not a metric autopatch exports", r.Alert, m)
			}
		}
	}
	for _, a := range []string{
		"AutopatchWindowNotClosed", "AutopatchWindowMissed", "AutopatchFailureStorm",
		"AutopatchSCCMUnreachable", "AutopatchSCOMUnreachable", "AutopatchServiceNowUnreachable",
		"AutopatchWebhookRefusalsRising",
	} {
		require.True(t, alerts[a], "an alert %s", a)
	}
}
