package estate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
	tenantsfile "github.com/autopatch/autopatch/internal/tenants"
)

// Tenant is one customer of a several-customer simulation (issue #20,
// docs/architecture.md §10.2): its name, as in the tenants file, and the
// options of its own estate (its SCCM site or sites, SCOM management group
// and ServiceNow instance, on listeners of their own).
type Tenant struct {
	Name    string
	Options Options
}

// Tenants is one running estate per customer. They share one CA, because
// the WinRM CA setting (AUTOPATCH_SCCM_CA_FILE) is the process's, for
// every tenant; everything else is each customer's own: ports, WinRM and
// ServiceNow credentials, webhook secret and API token.
type Tenants struct {
	names   []string
	estates map[string]*Estate
	// metricsToken is the operator's AUTOPATCH_METRICS_TOKEN in Env: serve
	// requires one with a tenants file.
	metricsToken string
}

// StartTenants starts one estate per tenant, in order. Fixed ports are
// refused: each tenant listens on ports of its own, chosen by the kernel.
// ctx bounds start-up only; Close stops every estate.
func StartTenants(ctx context.Context, tenants []Tenant) (*Tenants, error) {
	if len(tenants) == 0 {
		return nil, errors.New("estate: tenants: none listed")
	}
	t := &Tenants{estates: map[string]*Estate{}, metricsToken: "sim-metrics-" + strings.ToLower(rand.Text())}
	var certPEM, keyPEM, caPEM []byte
	for i, tn := range tenants {
		if !tenantsfile.ValidName(tn.Name) || tn.Name == tenantsfile.DefaultName {
			_ = t.Close()
			return nil, fmt.Errorf("estate: tenant %q: want a lower-case DNS label of at most %d characters, other than default", tn.Name, tenantsfile.MaxNameLength)
		}
		if _, dup := t.estates[tn.Name]; dup {
			_ = t.Close()
			return nil, fmt.Errorf("estate: tenant %q is listed twice", tn.Name)
		}
		opts := tn.Options
		if opts.WinRMPort != 0 || opts.ServiceNowPort != 0 || opts.ControlPort != 0 {
			_ = t.Close()
			return nil, fmt.Errorf("estate: tenant %q: fixed ports are not possible with several tenants", tn.Name)
		}
		if opts.PlainHTTP != tenants[0].Options.PlainHTTP {
			_ = t.Close()
			return nil, errors.New("estate: tenants: all over HTTPS or all over plain HTTP")
		}
		if !opts.PlainHTTP {
			if i == 0 {
				host := opts.Host
				if host == "" {
					host = DefaultHost
				}
				var err error
				if certPEM, keyPEM, caPEM, err = wsmansim.NewTLSCert(host, advertisedHost(host)); err != nil {
					_ = t.Close()
					return nil, fmt.Errorf("estate: %w", err)
				}
			}
			opts.tlsCert, opts.tlsKey, opts.tlsCA = certPEM, keyPEM, caPEM
		}
		e, err := Start(ctx, opts)
		if err != nil {
			_ = t.Close()
			return nil, fmt.Errorf("estate: tenant %s: %w", tn.Name, err)
		}
		t.names = append(t.names, tn.Name)
		t.estates[tn.Name] = e
	}
	return t, nil
}

// MetricsToken is the bearer token of serve's /metrics and /readyz
// details that Env sets (AUTOPATCH_METRICS_TOKEN).
func (t *Tenants) MetricsToken() string { return t.metricsToken }

// Names are the tenants, in the order given.
func (t *Tenants) Names() []string { return t.names }

// Estate is the estate of the tenant name; nil for none.
func (t *Tenants) Estate(name string) *Estate { return t.estates[name] }

// Close stops every tenant's estate.
func (t *Tenants) Close() error {
	var errs []error
	for _, name := range t.names {
		errs = append(errs, t.estates[name].Close())
	}
	return errors.Join(errs...)
}

// SecretEnv is the environment variable that holds the secret key
// (SCCM_PASSWORD, SCOM_PASSWORD, SERVICENOW_PASSWORD, WEBHOOK_SECRET,
// API_TOKEN) of the tenant name: TENANT_<NAME>_<KEY>, the name upper-cased
// with each - written _. Never AUTOPATCH_*, which are serve's own.
func SecretEnv(name, key string) string {
	return "TENANT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_" + key
}

// tenantsFile is the YAML of a tenants file (internal/tenants).
type tenantsFile struct {
	Tenants []tenantEntry `yaml:"tenants"`
}

type tenantEntry struct {
	Name          string         `yaml:"name"`
	SCCM          []tenantRemote `yaml:"sccm"`
	SCOM          tenantRemote   `yaml:"scom"`
	ServiceNow    tenantRemote   `yaml:"servicenow"`
	Schedules     string         `yaml:"schedules_file"`
	Services      string         `yaml:"services_file,omitempty"`
	WebhookSecret string         `yaml:"webhook_secret_env"`
	APIToken      string         `yaml:"api_token_env"`
}

type tenantRemote struct {
	Site        string `yaml:"site,omitempty"`
	Endpoint    string `yaml:"endpoint,omitempty"`
	URL         string `yaml:"url,omitempty"`
	User        string `yaml:"user"`
	PasswordEnv string `yaml:"password_env"`
}

// TenantsFile is the tenants file that points serve at the estates: each
// tenant's sites, SCOM and ServiceNow, its schedules file (schedules[name],
// as the file will name it) and, for every secret, the environment
// variable of Env that holds it. No secret is in it.
func (t *Tenants) TenantsFile(schedules map[string]string) ([]byte, error) {
	var f tenantsFile
	for _, name := range t.names {
		e := t.estates[name]
		if schedules[name] == "" {
			return nil, fmt.Errorf("estate: tenant %s: no schedules file", name)
		}
		entry := tenantEntry{
			Name:          name,
			SCOM:          tenantRemote{Endpoint: e.SCOMEndpoint(), User: e.User(), PasswordEnv: SecretEnv(name, "SCOM_PASSWORD")},
			ServiceNow:    tenantRemote{URL: e.ServiceNowURL(), User: e.ServiceNowUser(), PasswordEnv: SecretEnv(name, "SERVICENOW_PASSWORD")},
			Schedules:     schedules[name],
			WebhookSecret: SecretEnv(name, "WEBHOOK_SECRET"),
			APIToken:      SecretEnv(name, "API_TOKEN"),
		}
		for _, code := range e.SiteCodes() {
			entry.SCCM = append(entry.SCCM, tenantRemote{Site: code, Endpoint: e.SiteEndpoint(code), User: e.User(), PasswordEnv: SecretEnv(name, "SCCM_PASSWORD")})
		}
		f.Tenants = append(f.Tenants, entry)
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("estate: tenants file: %w", err)
	}
	return append([]byte("# Written by autopatch sim: one simulated estate per tenant. The secrets are in the env file.\n"), b...), nil
}

// Env returns the settings that point serve at the estates through the
// tenants file at tenantsFile: AUTOPATCH_TENANTS_FILE, the operator's
// AUTOPATCH_METRICS_TOKEN, the WinRM settings
// every tenant shares (authentication, the estates' one CA), each tenant's
// secrets in the variables TenantsFile names, and each tenant's control
// URL (AUTOPATCH_SIM_<NAME>_URL, which serve ignores). None of the default
// tenant's own settings is set, so serve serves the file's tenants only.
func (t *Tenants) Env(tenantsFile string) []string {
	env := []string{"AUTOPATCH_TENANTS_FILE=" + tenantsFile, "AUTOPATCH_METRICS_TOKEN=" + t.metricsToken}
	first := t.estates[t.names[0]]
	for _, system := range []string{"SCCM", "SCOM"} {
		env = append(env, "AUTOPATCH_"+system+"_AUTH="+winrm.AuthBasic)
		if first.CAFile() != "" {
			env = append(env, "AUTOPATCH_"+system+"_CA_FILE="+first.CAFile())
		}
	}
	for _, name := range t.names {
		e := t.estates[name]
		env = append(env,
			SecretEnv(name, "SCCM_PASSWORD")+"="+e.Password(),
			SecretEnv(name, "SCOM_PASSWORD")+"="+e.Password(),
			SecretEnv(name, "SERVICENOW_PASSWORD")+"="+e.ServiceNowPassword(),
			SecretEnv(name, "WEBHOOK_SECRET")+"="+e.WebhookSecret(),
			SecretEnv(name, "API_TOKEN")+"="+e.APIToken(),
			"AUTOPATCH_SIM_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+"_URL="+e.ControlURL(),
		)
	}
	return env
}

// WriteFiles writes the tenants file to tenantsPath (schedules as
// TenantsFile takes them) and Env to envPath (mode 0600: it holds the
// secrets), each replaced atomically; the tenants file first, so whoever
// waits for the env file finds both.
func (t *Tenants) WriteFiles(tenantsPath, envPath string, schedules map[string]string) error {
	b, err := t.TenantsFile(schedules)
	if err != nil {
		return err
	}
	if err := writeAtomic(tenantsPath, string(b), 0o644); err != nil {
		return fmt.Errorf("estate: tenants file: %w", err)
	}
	abs, err := filepath.Abs(tenantsPath)
	if err != nil {
		return fmt.Errorf("estate: tenants file: %w", err)
	}
	var env strings.Builder
	env.WriteString("# Written by autopatch sim --tenants: points autopatch serve at the simulated customers.\n")
	for _, line := range t.Env(abs) {
		env.WriteString(line + "\n")
	}
	if err := writeAtomic(envPath, env.String(), 0o600); err != nil {
		return fmt.Errorf("estate: env file: %w", err)
	}
	return nil
}

// SiteCodes are the codes of the estate's sites: the seed's first, then
// Options.Sites in order.
func (e *Estate) SiteCodes() []string {
	codes := []string{e.sccm.SiteCode()}
	for _, x := range e.sites {
		codes = append(codes, x.site.SiteCode())
	}
	return codes
}

// writeAtomic writes text to path with mode through a temporary file
// renamed into place.
func writeAtomic(path, text string, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.WriteString(text); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
