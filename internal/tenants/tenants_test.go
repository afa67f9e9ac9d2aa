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

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
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
    scom: {endpoint: "https://scom.contoso.example:5986/wsman", user: svc, password_env: CONTOSO_SCOM_PASSWORD}
    servicenow: {url: "https://contoso.service-now.com", user: autopatch, password_env: CONTOSO_SNOW_PASSWORD}
    schedules_file: contoso/schedules.yaml
    webhook_secret_env: CONTOSO_WEBHOOK_SECRET
    api_token_env: CONTOSO_API_TOKEN
`

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
}

var files = map[string]string{
	"secrets/acme-sccm-eu1":  "s3cret-acme-eu1\n",
	"secrets/acme-api-token": "s3cret-acme-token\n",
	"secrets/empty":          "\n",
	"acme/schedules.yaml":    strings.Replace(schedulesYAML, "name: DB,", "name: DB, site: PS1,", 1), // acme has two sites
	"acme/unknown-site.yaml": strings.Replace(schedulesYAML, "name: DB,", "name: DB, site: US1,", 1),
	"acme/services.yaml":     "services:\n  - {name: Payroll, max_unavailable: 1}\n",
	"contoso/schedules.yaml": schedulesYAML,
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
		{"ServiceNowMissing", replace("    servicenow: {url: \"https://contoso.service-now.com\", user: autopatch, password_env: CONTOSO_SNOW_PASSWORD}\n", ""),
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
		{"NoTenants", "tenants: []\n", []string{`tenants: empty; want at least one tenant (line 1)`}},
		{"NotAMapping", "- acme\n", []string{`want a mapping with the key tenants (line 1)`}},
		{"UnknownTopLevel", validYAML + "extra: 1\n", []string{`extra: unknown field; want one of tenants (line 32)`}},
		{"Empty", "", []string{`the file is empty`}},
		{"TwoDocuments", validYAML + "---\n" + validYAML, []string{`want one YAML document, found more`}},
		// Several at once: each reported, in file order.
		{"Several", replace("ACME_SCOM_PASSWORD", "ACME_NOT_SET") + "  - name: acme\n",
			[]string{
				`tenants[0] "acme": scom.password_env: environment variable ACME_NOT_SET is unset or empty (line 15)`,
				`tenants[2] "acme": name: duplicate of tenants[0] (line 32)`,
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
	fmt.Fprintf(&out, "%v %+v %#v %s\n", list, list, list, list)
	slog.New(slog.NewTextHandler(&out, nil)).Info("tenants", "list", list, "first", list[0])
	slog.New(slog.NewJSONHandler(&out, nil)).Info("tenants", "list", list, "first", list[0])
	b, err := json.Marshal(list)
	require.NoError(t, err)
	out.Write(b)

	require.Contains(t, out.String(), "[redacted]")
	require.Contains(t, out.String(), "ACME")
	for _, s := range secretValues() {
		require.NotContains(t, out.String(), s)
	}
}
