// Package config loads autopatch's settings from AUTOPATCH_* environment
// variables, their _FILE variants for secrets, and an optional YAML file.
//
// Precedence is default < YAML file < environment, so a container can ship a
// file and still override one setting. Every setting is declared once, on the
// Config struct, with its name, default and documentation; the README's table
// is generated from the same declarations (see Settings). Load reports every
// invalid setting at once; LoadServe adds the settings serve requires.
//
// Why not a library (caarlos0/env, envconfig, koanf, viper; looked at for
// issue #17): each covers the environment half, none the rest without as
// much glue as this package is. caarlos0/env's ",file" reads a file named by
// the variable itself, not a NAME_FILE twin beside NAME, and does not refuse
// both being set; none refuses unknown keys in a flat YAML file while
// letting the environment win per key; and their errors name Go fields and
// types ("parse error on field StatusPollInterval of type time.Duration")
// where autopatch's name the variable and say what is wanted
// (AUTOPATCH_STATUS_POLL_INTERVAL="often" is invalid: want a positive Go
// duration such as 30s or 5m), without ever echoing a secret. The loader is
// one small reflective walk over tagged fields, tested; a dependency would
// not make it smaller.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/internal/forcing"
	"github.com/autopatch/autopatch/internal/rollout"
)

// Prefix starts every environment variable autopatch reads.
const Prefix = "AUTOPATCH_"

// Config is every setting of autopatch. Field tags:
//
//	env:     the name after AUTOPATCH_ (the YAML key is the same in lower case)
//	default: the value when unset
//	doc:     one line for the README's configuration table
//
// Fields of type Secret also accept AUTOPATCH_<NAME>_FILE.
type Config struct {
	DatabaseURL     Secret        `env:"DATABASE_URL" doc:"PostgreSQL URL (pgx syntax). Required by serve and migrate."`
	Listen          string        `env:"LISTEN" default:":8080" doc:"HTTP listen address."`
	SchedulesFile   string        `env:"SCHEDULES_FILE" doc:"YAML schedules file (docs/architecture.md §4.2), loaded at start and on SIGHUP."`
	MigrateOnStart  bool          `env:"MIGRATE_ON_START" default:"true" doc:"serve applies autopatch's and River's migrations at start."`
	LogLevel        string        `env:"LOG_LEVEL" default:"info" doc:"debug, info, warn or error."`
	LogFormat       string        `env:"LOG_FORMAT" default:"json" doc:"json or text."`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" default:"30s" doc:"How long serve waits for requests and jobs to finish on SIGTERM."`
	TenantsFile     string        `env:"TENANTS_FILE" doc:"YAML tenants file: the customers served at /t/{tenant}/, each in its own schema (docs/tenants.md, README \"Several customers\"). With it, the AUTOPATCH_* SCCM, SCOM, ServiceNow, schedules, services, webhook and API token settings are the default tenant's, served at today's routes only if they are set; the other settings apply to every tenant."`

	WebhookSecret   Secret `env:"WEBHOOK_SECRET" doc:"HMAC-SHA256 key for X-Autopatch-Signature. This or Basic is required by serve."`
	WebhookUser     string `env:"WEBHOOK_USER" doc:"HTTP Basic user for webhooks."`
	WebhookPassword Secret `env:"WEBHOOK_PASSWORD" doc:"HTTP Basic password for webhooks."`
	APIToken        Secret `env:"API_TOKEN" doc:"Bearer token for /api/v1."`
	MetricsToken    Secret `env:"METRICS_TOKEN" doc:"Bearer token for /metrics and for the details of /readyz (its status code stays open to probes). Required with AUTOPATCH_TENANTS_FILE: the process's metrics and readiness name every customer. Empty without a tenants file: both are open, as before."`

	StatusPollInterval time.Duration `env:"STATUS_POLL_INTERVAL" default:"5m" doc:"How often deployment status is read while a window is open."`
	PreflightLead      time.Duration `env:"PREFLIGHT_LEAD" default:"24h" doc:"How long before a window its members' SCCM clients are checked (installed, active, last policy request); inactive ones are noted on the change and counted client_inactive in the compliance ledger."`
	DeadlineNormal     time.Duration `env:"DEADLINE_NORMAL" default:"720h" doc:"The deadline of a normal change (patching.classification normal, the default) after its cycle's Patch Tuesday (00:00 UTC): the compliance ledger's patched-by-deadline and the incidents of manual devices not compliant at it. A change's patching.deadline overrides it."`
	DeadlineCritical   time.Duration `env:"DEADLINE_CRITICAL" default:"336h" doc:"The deadline of a critical change after its cycle's Patch Tuesday (00:00 UTC); Microsoft IT's rule is 14 days."`
	DeadlineEmergency  time.Duration `env:"DEADLINE_EMERGENCY" default:"24h" doc:"The deadline of an emergency change after the change's start; Microsoft IT's rule is 24 hours."`
	ComplianceInterval time.Duration `env:"COMPLIANCE_INTERVAL" default:"15m" doc:"How often the compliance sweep reads client state before windows, the compliance of manual schedules' devices (one SCCM call for every change) and, until the deadline, the late status of closed windows."`
	MinWindowRemaining time.Duration `env:"MIN_WINDOW_REMAINING" default:"30m" doc:"A window opened late must have at least this much left (windows shorter than twice this: half of it); otherwise it is missed."`

	ServicesFile string `env:"SERVICES_FILE" doc:"Optional YAML of per-service safety limits (services: [{name, max_unavailable}]), loaded at start and on SIGHUP; see Service safety."`
	Safety       Safety `env:"SAFETY_"`

	Queues Queues `env:"QUEUE_"`

	Incident           Incident `env:"INCIDENT_"`
	StormThreshold     int      `env:"STORM_THRESHOLD" default:"50" doc:"Above this many failures in one window, the window gets one incident and one SCOM alert listing its devices instead of one each."`
	SCOMWindowComputer string   `env:"SCOM_WINDOW_COMPUTER" doc:"Windows Computer (FQDN or NetBIOS name, as SCOM monitors it) that carries the alerts of a whole window: missed windows, storms. Default: the host of AUTOPATCH_SCCM_ENDPOINT."`

	ErrorBudget string `env:"ERROR_BUDGET" default:"10%" doc:"Error budget of a change's rollout: a count of failures (5) or a share of the devices of the windows closed so far (10%, 2.5%). When the failures of the closed windows exceed it (a budget of 5 holds at the 6th failure), the windows not yet open are held until resumed. A change's patching.error_budget overrides it."`

	Force Force `env:"FORCE_"`

	DoctorUpdateGroups string `env:"DOCTOR_UPDATE_GROUPS" doc:"Comma-separated software update groups that autopatch doctor checks exist (added to its --update-group flags): the groups your changes name."`

	SCCM       WinRM      `env:"SCCM_"`
	SCOM       WinRM      `env:"SCOM_"`
	ServiceNow ServiceNow `env:"SERVICENOW_"`

	SCCMSites string `env:"SCCM_SITES" doc:"Comma-separated SCCM site codes (PS1,EU1), for an estate of several sites (docs/architecture.md §10.1); each site has AUTOPATCH_SCCM_<CODE>_ENDPOINT (required), _USER, _PASSWORD (or _PASSWORD_FILE), defaulting to AUTOPATCH_SCCM_USER/_PASSWORD, and _WORKERS (jobs' calls to the site at once per replica, default 2; the window keeper's are not counted); the other AUTOPATCH_SCCM_* settings apply to every site. List the site of a former AUTOPATCH_SCCM_ENDPOINT first: its deployments are taken as the first site's. Empty: AUTOPATCH_SCCM_ENDPOINT is the only site."`
	// Sites are the sites of SCCMSites, read by loadSites.
	Sites []SCCMSite `env:"-"`
}

// Safety sets what autopatch does when patching would take a service down
// (issue #8): redundant members in windows at once, or tiers out of order.
type Safety struct {
	RequestPolicy string `env:"REQUEST_POLICY" default:"reject" doc:"A schedule request that would break a service-safety rule: reject (no device moves; the RITM note says why and suggests schedules) or warn (carried out, the note warns)."`
	PlanPolicy    string `env:"PLAN_POLICY" default:"warn" doc:"A change plan that would break a service-safety rule: warn (the plan note lists the violations) or hold (the schedules whose windows would break it are left out of the change, and listed)."`
}

// Force sets forced remediation (docs/architecture.md §9.2): what autopatch
// does at a change's deadline with the devices neither patched nor deferred.
type Force struct {
	Collection string        `env:"COLLECTION" doc:"Device collection that autopatch alone manages for forced remediation (its ID must start with the site code). At each deadline, the devices neither patched nor deferred are put into it in safe waves, with a required deployment of the change's update groups. Empty: nothing is forced; the devices past their deadline are only counted and reported."`
	At         string        `env:"AT" doc:"Time of day (HH:MM, in AUTOPATCH_FORCE_TIMEZONE) at which forcing starts: the first such time at or after the deadline. Empty: at the deadline itself. Microsoft IT forces at 10:00."`
	Timezone   string        `env:"TIMEZONE" default:"UTC" doc:"IANA time zone of AUTOPATCH_FORCE_AT."`
	WaveLength time.Duration `env:"WAVE_LENGTH" default:"2h" doc:"How long each wave's required deployments stay enabled before they are disabled and the next wave starts: long enough for its devices to install and reboot."`
}

// Incident sets the fields of the incidents autopatch opens for failures.
type Incident struct {
	AssignmentGroup string `env:"ASSIGNMENT_GROUP" doc:"sys_id (or name) of the assignment group of failure incidents; empty leaves it to the instance's assignment rules."`
	Urgency         int    `env:"URGENCY" default:"2" doc:"Urgency of failure incidents: 1 high, 2 medium, 3 low."`
	Impact          int    `env:"IMPACT" default:"2" doc:"Impact of failure incidents: 1 high, 2 medium, 3 low."`
}

// Queues sets how many jobs of each River queue run at once in one replica.
// The remote-system queues are small on purpose: WinRM has per-user shell
// limits and ServiceNow rate-limits integration users.
type Queues struct {
	Default    int `env:"DEFAULT_WORKERS" default:"10" doc:"Concurrent jobs on the default queue."`
	SCCM       int `env:"SCCM_WORKERS" default:"2" doc:"Concurrent jobs talking to the SCCM site server."`
	SCOM       int `env:"SCOM_WORKERS" default:"2" doc:"Concurrent jobs talking to the SCOM management server."`
	ServiceNow int `env:"SERVICENOW_WORKERS" default:"4" doc:"Concurrent jobs talking to ServiceNow."`
}

// WinRM is how autopatch reaches a Windows server (SCCM site server, SCOM
// management server).
type WinRM struct {
	Endpoint           string        `env:"ENDPOINT" doc:"WinRM URL, e.g. https://host:5986/wsman."`
	User               string        `env:"USER" doc:"Account (DOMAIN\\user or user@domain)."`
	Password           Secret        `env:"PASSWORD" doc:"Account password."`
	Auth               string        `env:"AUTH" default:"ntlm" doc:"ntlm, basic or kerberos."`
	CAFile             string        `env:"CA_FILE" doc:"PEM CA bundle for the server certificate (default: system roots)."`
	InsecureSkipVerify bool          `env:"INSECURE_SKIP_VERIFY" default:"false" doc:"Skip certificate checks. Never in production."`
	Timeout            time.Duration `env:"TIMEOUT" default:"5m" doc:"Deadline of one remote call."`
}

// ServiceNow is how autopatch reaches the ServiceNow Table API.
type ServiceNow struct {
	URL               string        `env:"URL" doc:"Instance URL, e.g. https://example.service-now.com."`
	User              string        `env:"USER" doc:"Integration user."`
	Password          Secret        `env:"PASSWORD" doc:"Integration user's password."`
	OAuthClientID     string        `env:"OAUTH_CLIENT_ID" doc:"OAuth client id; when set, the password grant is used instead of Basic."`
	OAuthClientSecret Secret        `env:"OAUTH_CLIENT_SECRET" doc:"OAuth client secret."`
	Timeout           time.Duration `env:"TIMEOUT" default:"30s" doc:"Deadline of one HTTP request."`
}

// Setting describes one configuration variable, for documentation and errors.
type Setting struct {
	Env     string // full variable name, e.g. AUTOPATCH_LISTEN
	Default string
	Secret  bool
	Doc     string
	field   reflect.Value
}

// Load builds the configuration from the environment (getenv, usually
// os.Getenv) and, when yamlPath is not empty, a YAML file. Errors name the
// setting and never contain a secret's value; every invalid setting is
// reported, not only the first.
func Load(getenv func(string) string, yamlPath string) (*Config, error) {
	cfg, errs, err := load(getenv, yamlPath)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadServe is Load and ValidateServe in one: the invalid and the missing
// settings of serve are reported together, so an administrator does not
// discover them one start-up at a time.
func LoadServe(getenv func(string) string, yamlPath string) (*Config, error) {
	cfg, errs, err := load(getenv, yamlPath)
	if err != nil {
		return nil, err
	}
	errs = append(errs, cfg.ValidateServe())
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// load reads every setting and checks them. The error is a file that
// cannot be read (nothing else can be judged); errs are the settings'
// problems, all of them.
func load(getenv func(string) string, yamlPath string) (*Config, []error, error) {
	cfg := &Config{}
	settings := walk(reflect.ValueOf(cfg).Elem(), Prefix)

	fileValues := map[string]string{}
	if yamlPath != "" {
		var err error
		if fileValues, err = readYAML(yamlPath, settings); err != nil {
			return nil, nil, err
		}
	}

	var errs []error
	for _, s := range settings {
		raw, ok, err := lookup(s, getenv, fileValues)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			raw = s.Default
		}
		if err := set(s, raw); err != nil {
			errs = append(errs, err)
			// The default stands in, so that the checks below judge the
			// other settings and do not report this one a second time.
			_ = set(s, s.Default)
		}
	}
	errs = append(errs, cfg.loadSites(getenv, fileValues)...)
	if err := cfg.validateCommon(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errs, nil
}

// Settings lists every setting with its default and documentation.
func Settings() []Setting {
	return walk(reflect.ValueOf(&Config{}).Elem(), Prefix)
}

// lookup finds a setting's raw value: environment first, then the file; for a
// secret, the value itself or the content of the file named by _FILE.
func lookup(s Setting, getenv func(string) string, file map[string]string) (string, bool, error) {
	sources := []struct {
		name string
		get  func(string) string
	}{
		{"environment", getenv},
		{"config file", func(k string) string { return file[yamlKey(k)] }},
	}
	for _, src := range sources {
		v := src.get(s.Env)
		if !s.Secret {
			if v != "" {
				return v, true, nil
			}
			continue
		}
		path := src.get(s.Env + "_FILE")
		switch {
		case v != "" && path != "":
			return "", false, fmt.Errorf("%s and %s_FILE are both set in the %s: set only one", s.Env, s.Env, src.name)
		case path != "":
			b, err := os.ReadFile(path)
			if err != nil {
				return "", false, fmt.Errorf("%s_FILE: %w", s.Env, err)
			}
			// Files written by editors and secret stores end in a newline
			// that is not part of the secret.
			return strings.TrimRight(string(b), "\r\n"), true, nil
		case v != "":
			return v, true, nil
		}
	}
	return "", false, nil
}

func yamlKey(env string) string { return strings.ToLower(strings.TrimPrefix(env, Prefix)) }

// readYAML reads a flat YAML map whose keys are the setting names in lower
// case without the prefix (database_url, sccm_endpoint, webhook_secret_file).
// Unknown keys are errors: a typo must not silently fall back to a default.
func readYAML(path string, settings []Setting) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[yamlKey(s.Env)] = true
		if s.Secret {
			known[yamlKey(s.Env)+"_file"] = true
		}
	}
	out := map[string]string{}
	var unknown []string
	for k, v := range raw {
		// Per-site keys are judged by loadSites, once the sites are known.
		if !known[k] && !siteFileKey.MatchString(k) {
			unknown = append(unknown, k)
			continue
		}
		switch v := v.(type) {
		case nil:
		case map[string]any, []any:
			return nil, fmt.Errorf("--config %s: %s: want a single value", path, k)
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("--config %s: unknown settings: %s", path, strings.Join(unknown, ", "))
	}
	return out, nil
}

func walk(v reflect.Value, prefix string) []Setting {
	var out []Setting
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("env") == "-" {
			continue
		}
		name := prefix + f.Tag.Get("env")
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			out = append(out, walk(v.Field(i), name)...)
			continue
		}
		out = append(out, Setting{
			Env:     name,
			Default: f.Tag.Get("default"),
			Secret:  f.Type == reflect.TypeFor[Secret](),
			Doc:     f.Tag.Get("doc"),
			field:   v.Field(i),
		})
	}
	return out
}

func set(s Setting, raw string) error {
	if raw == "" {
		return nil
	}
	f := s.field
	invalid := func(why string) error {
		if s.Secret {
			return fmt.Errorf("%s is invalid: %s", s.Env, why)
		}
		return fmt.Errorf("%s=%q is invalid: %s", s.Env, raw, why)
	}
	switch {
	case f.Type() == reflect.TypeFor[time.Duration]():
		d, err := ParseDuration(raw)
		if err != nil {
			return invalid(err.Error())
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(raw)
	case f.Kind() == reflect.Bool:
		b, err := ParseBool(raw)
		if err != nil {
			return invalid(err.Error())
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 1000 {
			return invalid("want an integer from 1 to 1000")
		}
		f.SetInt(int64(n))
	default:
		panic("config: unsupported field type " + f.Type().String())
	}
	return nil
}

// validateCommon checks what must hold whatever the command.
func (c *Config) validateCommon() error {
	var errs []error
	if c.DatabaseURL.IsSet() {
		if _, err := url.Parse(c.DatabaseURL.Reveal()); err != nil || !strings.HasPrefix(c.DatabaseURL.Reveal(), "postgres") {
			errs = append(errs, errors.New("AUTOPATCH_DATABASE_URL is invalid: want postgres://user:password@host:port/db"))
		}
	}
	if !oneOf(c.LogLevel, "debug", "info", "warn", "error") {
		errs = append(errs, fmt.Errorf("AUTOPATCH_LOG_LEVEL=%q is invalid: want debug, info, warn or error", c.LogLevel))
	}
	if !oneOf(c.LogFormat, "json", "text") {
		errs = append(errs, fmt.Errorf("AUTOPATCH_LOG_FORMAT=%q is invalid: want json or text", c.LogFormat))
	}
	for _, w := range []struct {
		name string
		cfg  WinRM
	}{{"SCCM", c.SCCM}, {"SCOM", c.SCOM}} {
		if err := CheckWinRMAuth(w.cfg.Auth); err != nil {
			errs = append(errs, fmt.Errorf("AUTOPATCH_%s_AUTH=%q is invalid: %w", w.name, w.cfg.Auth, err))
		}
		if w.cfg.Endpoint != "" {
			if err := checkURL(w.cfg.Endpoint, "http", "https"); err != nil {
				errs = append(errs, fmt.Errorf("AUTOPATCH_%s_ENDPOINT=%q is invalid: %w", w.name, w.cfg.Endpoint, err))
			}
		}
	}
	if c.ServiceNow.URL != "" {
		if err := checkURL(c.ServiceNow.URL, "https", "http"); err != nil {
			errs = append(errs, fmt.Errorf("AUTOPATCH_SERVICENOW_URL=%q is invalid: %w", c.ServiceNow.URL, err))
		}
	}
	if !oneOf(c.Safety.RequestPolicy, "reject", "warn") {
		errs = append(errs, fmt.Errorf("AUTOPATCH_SAFETY_REQUEST_POLICY=%q is invalid: want reject or warn", c.Safety.RequestPolicy))
	}
	if !oneOf(c.Safety.PlanPolicy, "warn", "hold") {
		errs = append(errs, fmt.Errorf("AUTOPATCH_SAFETY_PLAN_POLICY=%q is invalid: want warn or hold", c.Safety.PlanPolicy))
	}
	for _, f := range []struct {
		name  string
		value int
	}{{"URGENCY", c.Incident.Urgency}, {"IMPACT", c.Incident.Impact}} {
		if f.value < 1 || f.value > 3 {
			errs = append(errs, fmt.Errorf("AUTOPATCH_INCIDENT_%s=%d is invalid: want 1 (high), 2 (medium) or 3 (low)", f.name, f.value))
		}
	}
	if _, err := forcing.ParseClock(c.Force.At); err != nil {
		errs = append(errs, fmt.Errorf("AUTOPATCH_FORCE_AT=%q is invalid: want a time of day HH:MM", c.Force.At))
	}
	if _, err := time.LoadLocation(c.Force.Timezone); err != nil || c.Force.Timezone == "" {
		errs = append(errs, fmt.Errorf("AUTOPATCH_FORCE_TIMEZONE=%q is invalid: want an IANA time zone such as Europe/Berlin", c.Force.Timezone))
	}
	if c.Force.WaveLength < time.Second {
		errs = append(errs, fmt.Errorf("AUTOPATCH_FORCE_WAVE_LENGTH=%s is invalid: want at least 1s (seconds only make sense in a demo)", c.Force.WaveLength))
	}
	if _, err := rollout.ParseBudget(c.ErrorBudget); err != nil {
		errs = append(errs, fmt.Errorf("AUTOPATCH_ERROR_BUDGET is invalid: %w", err))
	}
	if c.WebhookUser != "" && !c.WebhookPassword.IsSet() {
		errs = append(errs, errors.New("AUTOPATCH_WEBHOOK_PASSWORD is required when AUTOPATCH_WEBHOOK_USER is set"))
	}
	return errors.Join(errs...)
}

// ValidateDatabase checks what every command that opens the database needs.
func (c *Config) ValidateDatabase() error {
	if !c.DatabaseURL.IsSet() {
		return errors.New("AUTOPATCH_DATABASE_URL is required (or AUTOPATCH_DATABASE_URL_FILE)")
	}
	return nil
}

// DefaultTenant reports whether serve serves the tenant of the AUTOPATCH_*
// settings at today's routes: always without a tenants file; with one, only
// when any of that tenant's own settings is set (then all it needs are
// required, as without a tenants file). A tenants-only deployment so needs
// no dummy SCCM or ServiceNow settings, and a half-configured default
// tenant is reported rather than silently left out.
func (c *Config) DefaultTenant() bool {
	if c.TenantsFile == "" {
		return true
	}
	return c.SchedulesFile != "" || c.ServicesFile != "" || c.WebhookSecret.IsSet() || c.WebhookUser != "" ||
		c.APIToken.IsSet() || c.SCCMSites != "" || c.SCCM.Endpoint != "" || c.SCOM.Endpoint != "" || c.ServiceNow.URL != ""
}

// ValidateServe checks what serve needs beyond the database.
func (c *Config) ValidateServe() error {
	errs := []error{c.ValidateDatabase()}
	if c.TenantsFile != "" && !c.MetricsToken.IsSet() {
		errs = append(errs, errors.New("AUTOPATCH_METRICS_TOKEN is required with AUTOPATCH_TENANTS_FILE: /metrics and /readyz name every customer, and the webhooks' address is reachable by all of them"))
	}
	if !c.DefaultTenant() {
		return errors.Join(errs...)
	}
	if !c.WebhookSecret.IsSet() && c.WebhookUser == "" {
		errs = append(errs, errors.New("AUTOPATCH_WEBHOOK_SECRET or AUTOPATCH_WEBHOOK_USER/AUTOPATCH_WEBHOOK_PASSWORD is required: webhooks must be authenticated"))
	}
	if !c.APIToken.IsSet() {
		errs = append(errs, errors.New("AUTOPATCH_API_TOKEN is required: the read API must be authenticated"))
	}
	if len(c.Sites) > 0 {
		errs = append(errs, c.validateSitesServe()...)
	} else {
		if c.SCCM.Endpoint == "" {
			errs = append(errs, errors.New("AUTOPATCH_SCCM_ENDPOINT is required: the SCCM site server's WinRM URL"))
		}
		if c.SCCM.User == "" || !c.SCCM.Password.IsSet() {
			errs = append(errs, errors.New("AUTOPATCH_SCCM_USER and AUTOPATCH_SCCM_PASSWORD are required: the account autopatch runs ConfigMgr cmdlets as"))
		}
	}
	if c.SCOM.Endpoint == "" {
		errs = append(errs, errors.New("AUTOPATCH_SCOM_ENDPOINT is required: the SCOM management server's WinRM URL, where failure alerts are raised"))
	}
	if c.SCOM.User == "" || !c.SCOM.Password.IsSet() {
		errs = append(errs, errors.New("AUTOPATCH_SCOM_USER and AUTOPATCH_SCOM_PASSWORD are required: the account autopatch runs OperationsManager cmdlets as"))
	}
	if c.ServiceNow.URL == "" {
		errs = append(errs, errors.New("AUTOPATCH_SERVICENOW_URL is required: where plans, notes and incidents go"))
	}
	if c.ServiceNow.User == "" || !c.ServiceNow.Password.IsSet() {
		errs = append(errs, errors.New("AUTOPATCH_SERVICENOW_USER and AUTOPATCH_SERVICENOW_PASSWORD are required: the integration user"))
	}
	if c.SchedulesFile == "" {
		errs = append(errs, errors.New("AUTOPATCH_SCHEDULES_FILE is required: the schedules autopatch patches by"))
	}
	return errors.Join(errs...)
}

// ParseDuration reads a duration setting: a positive Go duration. Its
// error says what is wanted, for the caller to name the setting (the
// tenants file reads its durations with it too).
func ParseDuration(raw string) (time.Duration, error) {
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		return 0, errors.New("want a positive Go duration such as 30s or 5m")
	}
	return d, nil
}

// ParseBool reads a boolean setting; its error says what is wanted.
func ParseBool(raw string) (bool, error) {
	b, err := strconv.ParseBool(raw)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

// CheckWinRMAuth checks a WinRM authentication (AUTOPATCH_SCCM_AUTH,
// AUTOPATCH_SCOM_AUTH, a tenant's winrm.auth); its error says what is
// wanted, for the caller to name the setting.
func CheckWinRMAuth(auth string) error {
	if !oneOf(auth, "ntlm", "basic", "kerberos") {
		return errors.New("want ntlm, basic or kerberos")
	}
	return nil
}

func checkURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("want an absolute URL")
	}
	if !oneOf(u.Scheme, schemes...) {
		return fmt.Errorf("want scheme %s", strings.Join(schemes, " or "))
	}
	return nil
}

func oneOf(v string, options ...string) bool {
	for _, o := range options {
		if v == o {
			return true
		}
	}
	return false
}

// RedactURL hides the password of a URL such as a database URL, for logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
