package tenants

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/testdb"

	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

func TestMain(m *testing.M) { testdb.Run(m) }

const schedulesYAML = `schedules:
  - {name: DB, collection: "Patch - DB", timezone: Europe/London, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "02:00", duration: 4h}
`

// validYAML is two tenants; its secrets are the values of env below and
// the files testBundle writes. Relative paths are the bundle's directory.
const validYAML = `tenants:
  - name: acme
    sccm:
      - site: PS1
        endpoint: https://sccm1.acme.example:5986/wsman
        user: ACME\svc-autopatch
        password_env: ACME_SCCM_PASSWORD
      - site: EU1
        endpoint: https://sccm2.acme.example:5986/wsman
        user: ACME\svc-autopatch
        password_file: secrets/acme-sccm-eu1
    scom:
      endpoint: https://scom.acme.example:5986/wsman
      user: ACME\svc-autopatch
      password_env: ACME_SCOM_PASSWORD
    servicenow:
      url: https://acme.service-now.com
      user: autopatch.integration
      password_env: ACME_SNOW_PASSWORD
    schedules_file: acme/schedules.yaml
    services_file: acme/services.yaml
    webhook_secret_env: ACME_WEBHOOK_SECRET
    api_token_file: secrets/acme-api-token
  - name: contoso-eu
    sccm:
      - {site: CE1, endpoint: "https://sccm.contoso.example:5986/wsman", user: svc, password_env: CONTOSO_SCCM_PASSWORD}
    scom: {endpoint: "https://scom.contoso.example:5986/wsman", user: svc, password_env: CONTOSO_SCOM_PASSWORD, window_computer: scomgw.contoso.example}
    servicenow: {url: "https://contoso.service-now.com", user: autopatch, password_env: CONTOSO_SNOW_PASSWORD, oauth_client_id: autopatch-client, oauth_client_secret_env: CONTOSO_SNOW_OAUTH_SECRET}
    schedules_file: contoso/schedules.yaml
    webhook_secret_env: CONTOSO_WEBHOOK_SECRET
    api_token_env: CONTOSO_API_TOKEN
    force_collection: autopatch - Forced
    max_connections: 12
    winrm:
      auth: basic
      ca_file: contoso/ca.pem
      insecure_skip_verify: false
      timeout: 90s
`

// testCA is a PEM certificate for winrm.ca_file (a CA made for the test
// run, as the simulators make theirs; never used to connect).
var testCA = func() string {
	_, _, ca, err := wsmansim.NewTLSCert("localhost")
	if err != nil {
		panic(err)
	}
	return string(ca)
}()

// env holds the secrets validYAML names by environment variable.
var env = map[string]string{
	"ACME_SCCM_PASSWORD":     "s3cret-acme-sccm",
	"ACME_SCOM_PASSWORD":     "s3cret-acme-scom",
	"ACME_SNOW_PASSWORD":     "s3cret-acme-snow",
	"ACME_WEBHOOK_SECRET":    "s3cret-acme-hook",
	"CONTOSO_SCCM_PASSWORD":  "s3cret-contoso-sccm",
	"CONTOSO_SCOM_PASSWORD":  "s3cret-contoso-scom",
	"CONTOSO_SNOW_PASSWORD":  "s3cret-contoso-snow",
	"CONTOSO_WEBHOOK_SECRET": "s3cret-contoso-hook",
	"CONTOSO_API_TOKEN":      "s3cret-contoso-token",
	// An OAuth client secret is a secret like the others.
	"CONTOSO_SNOW_OAUTH_SECRET": "s3cret-contoso-oauth",
}

var files = map[string]string{
	"secrets/acme-sccm-eu1":  "s3cret-acme-eu1\n",
	"secrets/acme-api-token": "s3cret-acme-token\n",
	"secrets/empty":          "\n",
	"acme/schedules.yaml":    strings.Replace(schedulesYAML, "name: DB,", "name: DB, site: PS1,", 1), // acme has two sites
	"acme/unknown-site.yaml": strings.Replace(schedulesYAML, "name: DB,", "name: DB, site: US1,", 1),
	"acme/services.yaml":     "services:\n  - {name: Payroll, max_unavailable: 1}\n",
	"contoso/schedules.yaml": schedulesYAML,
	"contoso/ca.pem":         testCA,
	"bad/schedules.yaml":     "schedules:\n  - {name: DB, collection: X, timezone: Europe/Lundon, recurrence: {anchor: patch_tuesday}, start: \"02:00\", duration: 4h}\n",
	"bad/services.yaml":      "services:\n  - {name: Payroll, max_unavailable: 0}\n",
}

// secretValues are every secret of validYAML: no error, String or log line
// may contain one.
func secretValues() []string {
	var out []string
	for _, v := range env {
		out = append(out, v)
	}
	return append(out, "s3cret-acme-eu1", "s3cret-acme-token")
}

type testBundle struct {
	dir    string
	getenv func(string) string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	}
	return &testBundle{dir: dir, getenv: func(k string) string { return env[k] }}
}

// load writes a tenants file into the bundle's directory and loads it.
func (b *testBundle) load(t *testing.T, content string) ([]Tenant, error) {
	t.Helper()
	path := filepath.Join(b.dir, "tenants.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return Load(path, b.getenv)
}

func TestLoad(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	list, err := bundle.load(t, validYAML)
	require.NoError(t, err)
	require.Len(t, list, 2)

	acme := list[0]
	require.Equal(t, "acme", acme.Name)
	require.Equal(t, "tenant_acme", acme.Schema())
	require.Len(t, acme.SCCM, 2)
	require.Equal(t, Site{Code: "PS1", Endpoint: "https://sccm1.acme.example:5986/wsman", User: `ACME\svc-autopatch`, Password: "s3cret-acme-sccm"}, acme.SCCM[0])
	require.Equal(t, "s3cret-acme-eu1", acme.SCCM[1].Password.Reveal(), "the file's final newline is not part of the secret")
	require.Equal(t, WinRM{Endpoint: "https://scom.acme.example:5986/wsman", User: `ACME\svc-autopatch`, Password: "s3cret-acme-scom"}, acme.SCOM)
	require.Equal(t, ServiceNow{URL: "https://acme.service-now.com", User: "autopatch.integration", Password: "s3cret-acme-snow"}, acme.ServiceNow)
	require.Equal(t, filepath.Join(bundle.dir, "acme/schedules.yaml"), acme.SchedulesFile, "relative to the tenants file")
	require.Equal(t, filepath.Join(bundle.dir, "acme/services.yaml"), acme.ServicesFile)
	require.Equal(t, "s3cret-acme-hook", acme.WebhookSecret.Reveal())
	require.Equal(t, "s3cret-acme-token", acme.APIToken.Reveal())

	contoso := list[1]
	require.Equal(t, "contoso-eu", contoso.Name)
	require.Equal(t, "tenant_contoso_eu", contoso.Schema(), "River's schema names have no '-'")
	require.Empty(t, contoso.ServicesFile, "optional")
	require.Equal(t, "s3cret-contoso-token", contoso.APIToken.Reveal())

	// The optional keys (issue #20's per-tenant settings): absent at acme,
	// each set at contoso.
	require.Empty(t, acme.ForceCollection)
	require.Equal(t, WinRMSettings{}, acme.WinRM)
	require.Zero(t, acme.MaxConns)
	require.Empty(t, acme.SCOM.WindowComputer)
	require.Empty(t, acme.ServiceNow.OAuthClientID)
	require.False(t, acme.ServiceNow.OAuthClientSecret.IsSet())

	require.Equal(t, "autopatch - Forced", contoso.ForceCollection)
	require.Equal(t, 12, contoso.MaxConns)
	require.Equal(t, "scomgw.contoso.example", contoso.SCOM.WindowComputer)
	require.Equal(t, "autopatch-client", contoso.ServiceNow.OAuthClientID)
	require.Equal(t, "s3cret-contoso-oauth", contoso.ServiceNow.OAuthClientSecret.Reveal())
	no := false
	require.Equal(t, WinRMSettings{Auth: "basic", CAFile: filepath.Join(bundle.dir, "contoso/ca.pem"), InsecureSkipVerify: &no, Timeout: 90 * time.Second},
		contoso.WinRM, "ca_file is relative to the tenants file")
}

// TestWinRMSettingsApply: a tenant's WinRM settings replace the process's
// where set and keep them where not; an explicit false turns the process's
// skipped certificate checks back on.
func TestWinRMSettingsApply(t *testing.T) {
	t.Parallel()
	process := config.WinRM{Endpoint: "https://e", User: "u", Password: "p", Auth: "ntlm", CAFile: "/process/ca.pem",
		InsecureSkipVerify: true, Timeout: 5 * time.Minute}
	require.Equal(t, process, WinRMSettings{}.Apply(process), "nothing set: the process's")
	no := false
	got := WinRMSettings{Auth: "kerberos", CAFile: "/acme/ca.pem", InsecureSkipVerify: &no, Timeout: time.Minute}.Apply(process)
	require.Equal(t, config.WinRM{Endpoint: "https://e", User: "u", Password: "p", Auth: "kerberos", CAFile: "/acme/ca.pem",
		InsecureSkipVerify: false, Timeout: time.Minute}, got)
	got = WinRMSettings{Timeout: time.Minute}.Apply(process)
	require.Equal(t, "ntlm", got.Auth)
	require.Equal(t, "/process/ca.pem", got.CAFile)
	require.True(t, got.InsecureSkipVerify)
}

// TestLoadAbsolutePaths: an absolute path is kept as it is.
func TestLoadAbsolutePaths(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	abs := filepath.Join(bundle.dir, "contoso/schedules.yaml")
	list, err := bundle.load(t, strings.Replace(validYAML, "schedules_file: contoso/schedules.yaml", "schedules_file: "+abs, 1))
	require.NoError(t, err)
	require.Equal(t, abs, list[1].SchedulesFile)
}

// TestLoadLongestName: a name of MaxNameLength gives a schema River takes.
func TestLoadLongestName(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	name := strings.Repeat("a", MaxNameLength-2) + "-b"
	list, err := bundle.load(t, strings.Replace(validYAML, "name: acme", "name: "+name, 1))
	require.NoError(t, err)
	require.Equal(t, name, list[0].Name)
	_, err = river.NewClient(riverpgxv5.New(nil), &river.Config{Schema: list[0].Schema()})
	require.NoError(t, err, "River accepts the schema %s", list[0].Schema())
	_, err = river.NewClient(riverpgxv5.New(nil), &river.Config{Schema: list[0].Schema() + "x"})
	require.ErrorContains(t, err, "Schema length", "and the bound is tight")
}

// TestLoadRefusals: every refusal names the tenant, the field and the line.
func TestLoadRefusals(t *testing.T) {
	t.Parallel()
	replace := func(old, new string) string {
		if !strings.Contains(validYAML, old) {
			panic("validYAML has no " + old)
		}
		return strings.Replace(validYAML, old, new, 1)
	}
	for _, tt := range []struct {
		name    string
		content string
		want    []string
	}{
		{"DuplicateName", replace("name: contoso-eu", "name: acme"),
			[]string{`tenants[1] "acme": name: duplicate of tenants[0] (line 24)`}},
		{"NameUpperCase", replace("name: acme", "name: Acme"),
			[]string{`tenants[0] "Acme": name: "Acme" is invalid: want a lower-case DNS label of at most 39 characters`}},
		{"NameUnderscore", replace("name: acme", "name: ac_me"),
			[]string{`tenants[0] "ac_me": name: "ac_me" is invalid`}},
		{"NameTrailingHyphen", replace("name: acme", "name: acme-"),
			[]string{`name: "acme-" is invalid`}},
		{"NameTooLong", replace("name: acme", "name: "+strings.Repeat("a", 40)),
			[]string{`is invalid: want a lower-case DNS label of at most 39 characters`}},
		{"NameReserved", replace("name: acme", "name: default"),
			[]string{`tenants[0] "default": name: "default" is reserved for the AUTOPATCH_* configuration`}},
		{"NameMissing", replace("  - name: acme\n    sccm:", "  - sccm:"),
			[]string{`tenants[0]: name: required (line 2)`}},
		{"SecretEnvUnset", replace("ACME_SCOM_PASSWORD", "ACME_NOT_SET"),
			[]string{`tenants[0] "acme": scom.password_env: environment variable ACME_NOT_SET is unset or empty (line 15)`}},
		{"SecretFileMissing", replace("secrets/acme-api-token", "secrets/nope"),
			[]string{`tenants[0] "acme": api_token_file: cannot read the secret: open `, `secrets/nope: no such file or directory (line 23)`}},
		{"SecretFileEmpty", replace("secrets/acme-sccm-eu1", "secrets/empty"),
			[]string{`tenants[0] "acme": sccm[1].password_file: `, `secrets/empty is empty (line 11)`}},
		{"SecretMissing", replace("    webhook_secret_env: CONTOSO_WEBHOOK_SECRET\n", ""),
			[]string{`tenants[1] "contoso-eu": webhook_secret: required: name an environment variable (webhook_secret_env) or a file (webhook_secret_file) that holds it (line 24)`}},
		{"SecretEnvNotAName", replace("password_env: ACME_SCOM_PASSWORD", "password_env: hunter2"),
			[]string{`tenants[0] "acme": scom.password_env: want the name of an environment variable (upper-case letters, digits and _, e.g. ACME_SCCM_PASSWORD), not the secret (line 15)`}},
		{"SharedWebhookSecret", replace("webhook_secret_env: CONTOSO_WEBHOOK_SECRET", "webhook_secret_env: ACME_WEBHOOK_SECRET"),
			[]string{`tenants[1] "contoso-eu": webhook_secret: the same as tenants[0]'s: each tenant needs its own, or one tenant's would open the other's routes (line 30)`}},
		{"SharedAPIToken", replace("api_token_env: CONTOSO_API_TOKEN", "api_token_file: secrets/acme-api-token"),
			[]string{`tenants[1] "contoso-eu": api_token: the same as tenants[0]'s: each tenant needs its own`}},
		{"SecretBoth", replace("password_env: ACME_SNOW_PASSWORD", "password_env: ACME_SNOW_PASSWORD\n      password_file: secrets/acme-api-token"),
			[]string{`tenants[0] "acme": servicenow.password_env: password_env and password_file are both set: set only one (line 19)`}},
		{"SecretInFile", replace("password_env: ACME_SCOM_PASSWORD", "password: hunter2"),
			[]string{
				`tenants[0] "acme": scom.password: secrets are never written in the tenants file: name an environment variable (password_env) or a file (password_file) that holds it (line 15)`,
				`tenants[0] "acme": scom.password: required`,
			}},
		{"SiteCodeInvalid", replace("site: EU1", "site: eu1"),
			[]string{`tenants[0] "acme": sccm[1].site: "eu1" is not a site code: want three upper-case letters or digits (PS1) (line 8)`}},
		{"SiteCodeDuplicate", replace("site: EU1", "site: PS1"),
			[]string{`tenants[0] "acme": sccm[1].site: PS1 is already sccm[0] (line 8)`}},
		{"NoSites", replace("    sccm:\n      - {site: CE1, endpoint: \"https://sccm.contoso.example:5986/wsman\", user: svc, password_env: CONTOSO_SCCM_PASSWORD}\n", "    sccm: []\n"),
			[]string{`tenants[1] "contoso-eu": sccm: required: want a list of at least one site`}},
		{"EndpointInvalid", replace("https://scom.acme.example:5986/wsman", "scom.acme.example"),
			[]string{`tenants[0] "acme": scom.endpoint: "scom.acme.example" is invalid: want an absolute http or https URL (line 13)`}},
		{"EndpointWithCredentials", replace("url: https://acme.service-now.com", "url: https://admin:hunter2@acme.service-now.com"),
			[]string{`tenants[0] "acme": servicenow.url: holds credentials (user@ or user:password@; not shown): put the user in user and the password in password_env or password_file (line 17)`}},
		{"ServiceNowMissing", replace("    servicenow: {url: \"https://contoso.service-now.com\", user: autopatch, password_env: CONTOSO_SNOW_PASSWORD, oauth_client_id: autopatch-client, oauth_client_secret_env: CONTOSO_SNOW_OAUTH_SECRET}\n", ""),
			[]string{`tenants[1] "contoso-eu": servicenow: required (line 24)`}},
		{"UserMissing", replace("      user: autopatch.integration\n", ""),
			[]string{`tenants[0] "acme": servicenow.user: required (line 17)`}},
		{"UnknownField", replace("schedules_file: acme/schedules.yaml", "schedule_file: acme/schedules.yaml"),
			[]string{
				`tenants[0] "acme": schedule_file: unknown field; want one of name, sccm,`,
				`tenants[0] "acme": schedules_file: required`,
			}},
		{"SchedulesFileMissing", replace("acme/schedules.yaml", "acme/nope.yaml"),
			[]string{`tenants[0] "acme": schedules_file: schedules file: open `, `acme/nope.yaml: no such file or directory (line 20)`}},
		{"SchedulesFileInvalid", replace("contoso/schedules.yaml", "bad/schedules.yaml"),
			[]string{`tenants[1] "contoso-eu": schedules_file: schedules file `, `unknown time zone "Europe/Lundon"`}},
		{"UnknownSite", replace("acme/schedules.yaml", "acme/unknown-site.yaml"),
			[]string{`tenants[0] "acme": schedules_file: `, `schedule "DB": site: unknown site "US1" (configured: PS1, EU1) (line 20)`}},
		{"ServicesFileInvalid", replace("acme/services.yaml", "bad/services.yaml"),
			[]string{`tenants[0] "acme": services_file: `, `max_unavailable: want a whole number of at least 1`}},
		// The per-tenant settings of issue #20.
		{"ForceCollectionNotAName", replace("force_collection: autopatch - Forced", "force_collection: [a, b]"),
			[]string{`tenants[1] "contoso-eu": force_collection: want a single value (line 32)`}},
		{"MaxConnectionsTooFew", replace("max_connections: 12", "max_connections: 3"),
			[]string{`tenants[1] "contoso-eu": max_connections: "3" is invalid: want a whole number from 4 to 256 (line 33)`}},
		{"MaxConnectionsTooMany", replace("max_connections: 12", "max_connections: 320"),
			[]string{`tenants[1] "contoso-eu": max_connections: "320" is invalid: want a whole number from 4 to 256 (line 33)`}},
		{"MaxConnectionsNotANumber", replace("max_connections: 12", "max_connections: lots"),
			[]string{`tenants[1] "contoso-eu": max_connections: "lots" is invalid`}},
		{"WinRMNotAMapping", replace("    winrm:\n      auth: basic\n      ca_file: contoso/ca.pem\n      insecure_skip_verify: false\n      timeout: 90s\n", "    winrm: basic\n"),
			[]string{`tenants[1] "contoso-eu": winrm: want a mapping with auth, ca_file, insecure_skip_verify or timeout (line 34)`}},
		{"WinRMUnknownKey", replace("      auth: basic\n", "      auth: basic\n      endpoint: https://x\n"),
			[]string{`tenants[1] "contoso-eu": winrm.endpoint: unknown field; want one of auth, ca_file, insecure_skip_verify, timeout (line 36)`}},
		{"WinRMSecretInFile", replace("      auth: basic\n", "      auth: basic\n      password: hunter2\n"),
			[]string{`tenants[1] "contoso-eu": winrm.password: secrets are never written in the tenants file`}},
		{"WinRMAuth", replace("auth: basic", "auth: digest"),
			[]string{`tenants[1] "contoso-eu": winrm.auth: "digest" is invalid: want ntlm, basic or kerberos (line 35)`}},
		{"WinRMCAFileMissing", replace("ca_file: contoso/ca.pem", "ca_file: contoso/nope.pem"),
			[]string{`tenants[1] "contoso-eu": winrm.ca_file: read CA file: open `, `contoso/nope.pem: no such file or directory (line 36)`}},
		{"WinRMCAFileNotPEM", replace("ca_file: contoso/ca.pem", "ca_file: contoso/schedules.yaml"),
			[]string{`tenants[1] "contoso-eu": winrm.ca_file: CA file `, `contoso/schedules.yaml holds no PEM certificate (line 36)`}},
		{"WinRMInsecureSkipVerify", replace("insecure_skip_verify: false", "insecure_skip_verify: maybe"),
			[]string{`tenants[1] "contoso-eu": winrm.insecure_skip_verify: "maybe" is invalid: want true or false (line 37)`}},
		{"WinRMTimeoutNegative", replace("timeout: 90s", "timeout: -1s"),
			[]string{`tenants[1] "contoso-eu": winrm.timeout: "-1s" is invalid: want a positive Go duration such as 30s or 5m (line 38)`}},
		{"WinRMTimeoutNoUnit", replace("timeout: 90s", "timeout: 90"),
			[]string{`tenants[1] "contoso-eu": winrm.timeout: "90" is invalid: want a positive Go duration`}},
		{"OAuthIDWithoutSecret", replace(", oauth_client_secret_env: CONTOSO_SNOW_OAUTH_SECRET", ""),
			[]string{`tenants[1] "contoso-eu": servicenow.oauth_client_secret: required with oauth_client_id: name an environment variable (oauth_client_secret_env) or a file (oauth_client_secret_file) that holds it (line 28)`}},
		{"OAuthSecretWithoutID", replace("oauth_client_id: autopatch-client, ", ""),
			[]string{`tenants[1] "contoso-eu": servicenow.oauth_client_id: required with oauth_client_secret_env or oauth_client_secret_file (line 28)`}},
		{"OAuthSecretUnset", replace("oauth_client_secret_env: CONTOSO_SNOW_OAUTH_SECRET", "oauth_client_secret_env: CONTOSO_NOT_SET"),
			[]string{`tenants[1] "contoso-eu": servicenow.oauth_client_secret_env: environment variable CONTOSO_NOT_SET is unset or empty (line 28)`}},
		{"OAuthSecretNotAName", replace("oauth_client_secret_env: CONTOSO_SNOW_OAUTH_SECRET", "oauth_client_secret_env: hunter2"),
			[]string{`tenants[1] "contoso-eu": servicenow.oauth_client_secret_env: want the name of an environment variable`}},
		{"OAuthSecretInFile", replace("oauth_client_secret_env: CONTOSO_SNOW_OAUTH_SECRET", "oauth_client_secret: hunter2"),
			[]string{
				`tenants[1] "contoso-eu": servicenow.oauth_client_secret: secrets are never written in the tenants file: name an environment variable (oauth_client_secret_env) or a file (oauth_client_secret_file) that holds it (line 28)`,
				`tenants[1] "contoso-eu": servicenow.oauth_client_secret: required with oauth_client_id`,
			}},
		{"OAuthSecretFileEmpty", replace("oauth_client_secret_env: CONTOSO_SNOW_OAUTH_SECRET", "oauth_client_secret_file: secrets/empty"),
			[]string{`tenants[1] "contoso-eu": servicenow.oauth_client_secret_file: `, `secrets/empty is empty (line 28)`}},
		{"WindowComputerNotAName", replace("window_computer: scomgw.contoso.example", "window_computer: {a: b}"),
			[]string{`tenants[1] "contoso-eu": scom.window_computer: want a single value (line 27)`}},
		{"NoTenants", "tenants: []\n", []string{`tenants: empty; want at least one tenant (line 1)`}},
		{"NotAMapping", "- acme\n", []string{`want a mapping with the key tenants (line 1)`}},
		{"UnknownTopLevel", validYAML + "extra: 1\n", []string{`extra: unknown field; want one of tenants (line 39)`}},
		{"Empty", "", []string{`the file is empty`}},
		{"TwoDocuments", validYAML + "---\n" + validYAML, []string{`want one YAML document, found more`}},
		// Several at once: each reported, in file order.
		{"Several", replace("ACME_SCOM_PASSWORD", "ACME_NOT_SET") + "  - name: acme\n",
			[]string{
				`tenants[0] "acme": scom.password_env: environment variable ACME_NOT_SET is unset or empty (line 15)`,
				`tenants[2] "acme": name: duplicate of tenants[0] (line 39)`,
				`tenants[2] "acme": sccm: required`,
				`tenants[2] "acme": api_token: required`,
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bundle := setup(t)
			list, err := bundle.load(t, tt.content)
			require.Error(t, err)
			require.Nil(t, list)
			for _, want := range tt.want {
				require.Contains(t, err.Error(), want)
			}
			for _, s := range secretValues() {
				require.NotContains(t, err.Error(), s)
			}
			require.NotContains(t, err.Error(), "hunter2", "a secret written in the file is not echoed")
			if strings.Contains(tt.want[0], "(line") {
				var fe *FieldError
				require.ErrorAs(t, err, &fe)
			}
		})
	}
}

// TestSecretsNotPrinted: a loaded tenant printed every way (fmt, slog's text
// and JSON handlers, JSON) shows none of its secrets.
func TestSecretsNotPrinted(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	list, err := bundle.load(t, validYAML)
	require.NoError(t, err)

	var out bytes.Buffer
	fmt.Fprintf(&out, "%v %+v %#v\n", list, list, list)
	for _, tn := range list {
		fmt.Fprintf(&out, "%s %s %s %s %s\n", tn.SCCM, tn.SCOM, tn.ServiceNow, tn.WebhookSecret, tn.APIToken)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("tenants", "list", list, "first", list[0])
	slog.New(slog.NewJSONHandler(&out, nil)).Info("tenants", "list", list, "first", list[0])
	b, err := json.Marshal(list)
	require.NoError(t, err)
	out.Write(b)

	require.Contains(t, out.String(), "[redacted]")
	require.Contains(t, out.String(), "ACME")
	require.Contains(t, out.String(), "autopatch-client", "the OAuth client id is no secret")
	for _, s := range secretValues() {
		require.NotContains(t, out.String(), s)
	}
}
