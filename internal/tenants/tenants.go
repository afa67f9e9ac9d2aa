// Package tenants reads the tenants file: the customers one autopatch process
// serves (issue #20), each with its own SCCM sites, SCOM management group,
// ServiceNow instance, schedules, credentials and PostgreSQL schema.
//
// The file holds no secret. Each credential is a reference, the way
// AUTOPATCH_*_FILE settings are (internal/config): the name of an environment
// variable (password_env) or a file (password_file) that holds it. Load
// resolves every reference into a config.Secret, which prints as
// "[redacted]", so neither a Tenant nor an error of this package carries a
// secret's value.
//
// Without a tenants file autopatch is the single tenant of its AUTOPATCH_*
// configuration, in the schema public, as before; the name "default" is kept
// for it.
package tenants

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/schedules"

	"github.com/autopatch/autopatch/internal/yamlnode"
)

// DefaultName is the tenant of the AUTOPATCH_* configuration, at today's
// routes and in the schema public. A tenants file cannot use it: /t/default/
// would otherwise name a second, different "default".
const DefaultName = "default"

// SchemaPrefix starts the PostgreSQL schema of every tenant.
const SchemaPrefix = "tenant_"

// MaxNameLength bounds a tenant's name so that its schema is one River
// accepts: River prefixes notification topics with the schema, and a topic
// must fit PostgreSQL's 63-byte identifiers, so a schema is at most
// 63 - 1 - len("river_leadership") = 46 bytes (river@v0.51.1 client.go,
// Config.validate); 46 - len("tenant_") = 39.
const MaxNameLength = 39

// nameRE is a lower-case DNS label (RFC 1123) of at most MaxNameLength: the
// name travels in URLs (/t/{tenant}/) and into the schema name.
var nameRE = regexp.MustCompile(fmt.Sprintf(`^[a-z0-9]([a-z0-9-]{0,%d}[a-z0-9])?$`, MaxNameLength-2))

// ValidName reports whether name is a lower-case DNS label of at most
// MaxNameLength: what a tenant's name is made of (DefaultName is also
// reserved). The console (an unknown tenant's pages) and the simulator
// check names with it too.
func ValidName(name string) bool {
	return nameRE.MatchString(name)
}

// envNameRE is an environment variable's name as the shells and container
// runtimes write them.
var envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// siteRE is SCCM's rule for a site code: three letters or digits.
var siteRE = regexp.MustCompile(`^[A-Z0-9]{3}$`)

// Tenant is one customer of the tenants file, with its secrets resolved and
// its paths absolute.
type Tenant struct {
	Name string
	// SCCM lists the tenant's SCCM sites, at least one, in file order.
	SCCM       []Site
	SCOM       WinRM
	ServiceNow ServiceNow
	// SchedulesFile is the tenant's schedules file (docs/architecture.md
	// §4.2); ServicesFile its optional services file, "" for none.
	SchedulesFile string
	ServicesFile  string
	// WebhookSecret is the HMAC key of the tenant's webhooks; APIToken the
	// bearer token of its read API.
	WebhookSecret config.Secret
	APIToken      config.Secret
	// ForceCollection is the collection autopatch manages for forced
	// remediation at each of the tenant's sites, as
	// AUTOPATCH_FORCE_COLLECTION is the default tenant's; "" forces
	// nothing. The process's AUTOPATCH_FORCE_AT, _TIMEZONE and
	// _WAVE_LENGTH apply.
	ForceCollection string
	// WinRM is how the tenant's SCCM site servers and SCOM management
	// server are reached, where it differs from the process's.
	WinRM WinRMSettings
	// MaxConns bounds the tenant's connection pool; 0: the database URL's
	// pool_max_conns, else store.DefaultMaxConns.
	MaxConns int
}

// Bounds of a tenant's max_connections. Below MinMaxConns a tenant's River
// client (its LISTEN connection, its leader election and a job) and its
// window keeper would wait on each other; above MaxMaxConns is beyond any
// PostgreSQL this serves (the server's own default max_connections is 100)
// and is taken for a typo.
const (
	MinMaxConns = 4
	MaxMaxConns = 256
)

// WinRMSettings are a tenant's WinRM settings other than endpoint, user and
// password, for its SCCM sites and its SCOM server alike: a customer's
// servers share its domain and its CA. Each is the process's
// AUTOPATCH_SCCM_* (for sites) or AUTOPATCH_SCOM_* (for SCOM) value when
// unset.
type WinRMSettings struct {
	// Auth is ntlm, basic or kerberos; "" unset.
	Auth string
	// CAFile is a PEM CA bundle, absolute; "" unset.
	CAFile string
	// InsecureSkipVerify skips certificate checks; nil unset.
	InsecureSkipVerify *bool
	// Timeout bounds one remote call; 0 unset.
	Timeout time.Duration
}

// Apply returns base with the tenant's settings in place of the process's.
func (s WinRMSettings) Apply(base config.WinRM) config.WinRM {
	if s.Auth != "" {
		base.Auth = s.Auth
	}
	if s.CAFile != "" {
		base.CAFile = s.CAFile
	}
	if s.InsecureSkipVerify != nil {
		base.InsecureSkipVerify = *s.InsecureSkipVerify
	}
	if s.Timeout > 0 {
		base.Timeout = s.Timeout
	}
	return base
}

// Schema returns the tenant's PostgreSQL schema: tenant_ and the name with
// each '-' as '_', because River accepts only letters, digits and
// underscores in a schema (river@v0.51.1 client.go, postgresSchemaNameRE).
// A name holds no '_', so two tenants never share a schema.
func (t Tenant) Schema() string {
	return SchemaPrefix + strings.ReplaceAll(t.Name, "-", "_")
}

// Site is one SCCM site server of a tenant.
type Site struct {
	// Code is the site code, e.g. PS1, as schedules name it.
	Code     string
	Endpoint string
	User     string
	Password config.Secret
}

// WinRM is how autopatch reaches a tenant's SCOM management server.
type WinRM struct {
	Endpoint string
	User     string
	Password config.Secret
	// WindowComputer is the Windows Computer that carries the alerts of a
	// whole window, as AUTOPATCH_SCOM_WINDOW_COMPUTER is the default
	// tenant's; "": the host of the tenant's first SCCM site.
	WindowComputer string
}

// ServiceNow is a tenant's ServiceNow instance and integration user.
type ServiceNow struct {
	URL      string
	User     string
	Password config.Secret
	// OAuthClientID and OAuthClientSecret select the OAuth password grant
	// instead of Basic, as AUTOPATCH_SERVICENOW_OAUTH_* do for the default
	// tenant; both or neither.
	OAuthClientID     string
	OAuthClientSecret config.Secret
}

// FieldError is one problem in a tenants file. Its message names the tenant
// and the field, e.g. `tenants[1] "acme": sccm[0].password_env: environment
// variable ACME_SCCM_PASSWORD is unset or empty (line 12)`.
type FieldError = yamlnode.FieldError

// Load reads and validates the tenants file at path. getenv (os.Getenv in
// production) resolves the *_env references. Relative paths in the file
// (schedules, services and secret files) are relative to the file's
// directory, so the file and what it names move together.
//
// Every problem is reported, not only the first: the error wraps an
// errors.Join of one *FieldError each, in file order. Start-up fails on
// any: a tenant half configured must not run.
func Load(path string, getenv func(string) string) ([]Tenant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	list, err := parse(b, filepath.Dir(abs), getenv)
	if err != nil {
		return nil, fmt.Errorf("tenants file %s: %w", path, err)
	}
	return list, nil
}

func parse(data []byte, dir string, getenv func(string) string) ([]Tenant, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty")
		}
		return nil, fmt.Errorf("parse: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("want one YAML document, found more")
	}
	p := &parser{dir: dir, getenv: getenv}
	list := p.file(&doc)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *FieldError) int {
			if a.Index != b.Index {
				return a.Index - b.Index
			}
			return a.Line - b.Line
		})
		errs := make([]error, len(p.errs))
		for i, e := range p.errs {
			errs[i] = e
		}
		return nil, fmt.Errorf("invalid:\n%w", errors.Join(errs...))
	}
	return list, nil
}

// parser collects problems while walking the YAML tree.
type parser struct {
	dir    string
	getenv func(string) string
	errs   []*FieldError
}

// at is where a problem is: the tenant's index and name.
type at struct {
	index int
	name  string
}

func (p *parser) fail(w at, field string, n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{List: "tenants", Index: w.index, Name: w.name, Field: field, Line: yamlnode.Line(n), Msg: fmt.Sprintf(format, args...)})
}

// pair is one key of a mapping with its value.
type pair struct {
	keyN  *yaml.Node
	value *yaml.Node
}

// secretKeys are the keys that would hold a secret itself; the file names
// where the secret is instead (key_env or key_file).
var secretKeys = []string{"password", "webhook_secret", "api_token", "oauth_client_secret"}

// fields returns a mapping's pairs, reporting unknown and repeated keys. A
// key that would hold a secret in the file is refused without its value.
func (p *parser) fields(w at, n *yaml.Node, allowed []string, prefix string) map[string]pair {
	out := make(map[string]pair, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], yamlnode.Deref(n.Content[i+1])
		field := prefix + k.Value
		switch {
		case slices.Contains(secretKeys, k.Value):
			p.fail(w, field, k, "secrets are never written in the tenants file: name an environment variable (%s_env) or a file (%s_file) that holds it", k.Value, k.Value)
		case !slices.Contains(allowed, k.Value):
			p.fail(w, field, k, "unknown field; want one of %s", strings.Join(allowed, ", "))
		case out[k.Value].keyN != nil:
			p.fail(w, field, k, "repeated")
		default:
			out[k.Value] = pair{keyN: k, value: v}
		}
	}
	return out
}

// str returns a scalar's text, "" when absent or null.
func (p *parser) str(w at, m map[string]pair, key, prefix string) (string, *yaml.Node) {
	f, ok := m[key]
	if !ok || yamlnode.IsNull(f.value) {
		return "", f.keyN
	}
	if f.value.Kind != yaml.ScalarNode {
		p.fail(w, prefix+key, f.value, "want a single value")
		return "", f.value
	}
	return strings.TrimSpace(f.value.Value), f.value
}

// required is str that reports a missing value; parent is the mapping, for
// the line of a missing key.
func (p *parser) required(w at, m map[string]pair, key, prefix string, parent *yaml.Node) (string, *yaml.Node) {
	v, n := p.str(w, m, key, prefix)
	if v == "" {
		if n == nil {
			n = parent
		}
		p.fail(w, prefix+key, n, "required")
	}
	return v, n
}

// path resolves a path of the file against its directory.
func (p *parser) path(v string) string {
	if v == "" || filepath.IsAbs(v) {
		return v
	}
	return filepath.Join(p.dir, v)
}

// secret resolves the reference key_env or key_file. The problems it
// reports name the variable or the file, never what they hold.
func (p *parser) secret(w at, m map[string]pair, key, prefix string, parent *yaml.Node) config.Secret {
	envName, envN := p.str(w, m, key+"_env", prefix)
	file, fileN := p.str(w, m, key+"_file", prefix)
	switch {
	case envName != "" && file != "":
		p.fail(w, prefix+key+"_env", envN, "%s_env and %s_file are both set: set only one", key, key)
	case envName != "" && !envNameRE.MatchString(envName):
		// Not echoed: a value that is no variable name may be the secret
		// itself, written where its variable's name belongs.
		p.fail(w, prefix+key+"_env", envN, "want the name of an environment variable (upper-case letters, digits and _, e.g. ACME_SCCM_PASSWORD), not the secret")
	case envName != "":
		v := p.getenv(envName)
		if v == "" {
			p.fail(w, prefix+key+"_env", envN, "environment variable %s is unset or empty", envName)
		}
		return config.Secret(v)
	case file != "":
		b, err := os.ReadFile(p.path(file))
		if err != nil {
			p.fail(w, prefix+key+"_file", fileN, "cannot read the secret: %v", err)
			return ""
		}
		// As AUTOPATCH_*_FILE: the newline editors and secret stores end
		// a file with is not part of the secret.
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			p.fail(w, prefix+key+"_file", fileN, "%s is empty", p.path(file))
		}
		return config.Secret(v)
	default:
		p.fail(w, prefix+key, parent, "required: name an environment variable (%s_env) or a file (%s_file) that holds it", key, key)
	}
	return ""
}

// optionalSecret is secret for a secret that may be left out: "" when
// neither key_env nor key_file is there.
func (p *parser) optionalSecret(w at, m map[string]pair, key, prefix string, parent *yaml.Node) config.Secret {
	_, env := m[key+"_env"]
	_, file := m[key+"_file"]
	if !env && !file {
		return ""
	}
	return p.secret(w, m, key, prefix, parent)
}

// endpoint checks an absolute http(s) URL.
func (p *parser) endpoint(w at, m map[string]pair, key, prefix string, parent *yaml.Node) string {
	v, n := p.required(w, m, key, prefix, parent)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		// Not echoed: what does not parse may hold user:password@.
		p.fail(w, prefix+key, n, "is not a URL: want an absolute http or https URL")
	case u.User != nil:
		p.fail(w, prefix+key, n, "holds credentials (user@ or user:password@; not shown): put the user in user and the password in password_env or password_file")
	case u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		p.fail(w, prefix+key, n, "%q is invalid: want an absolute http or https URL", v)
	}
	return v
}

// mapping returns the mapping under key, reporting a missing or wrong one.
func (p *parser) mapping(w at, m map[string]pair, key string, parent *yaml.Node) *yaml.Node {
	f, ok := m[key]
	switch {
	case !ok || yamlnode.IsNull(f.value):
		n := f.keyN
		if n == nil {
			n = parent
		}
		p.fail(w, key, n, "required")
		return nil
	case f.value.Kind != yaml.MappingNode:
		p.fail(w, key, f.value, "want a mapping")
		return nil
	}
	return f.value
}

var tenantFields = []string{
	"name", "sccm", "scom", "servicenow", "schedules_file", "services_file",
	"webhook_secret_env", "webhook_secret_file", "api_token_env", "api_token_file",
	"force_collection", "winrm", "max_connections",
}

var (
	siteFields       = []string{"site", "endpoint", "user", "password_env", "password_file"}
	scomFields       = []string{"endpoint", "user", "password_env", "password_file", "window_computer"}
	serviceNowFields = []string{"url", "user", "password_env", "password_file",
		"oauth_client_id", "oauth_client_secret_env", "oauth_client_secret_file"}
	winrmFields = []string{"auth", "ca_file", "insecure_skip_verify", "timeout"}
)

func (p *parser) file(doc *yaml.Node) []Tenant {
	file := at{index: -1}
	root := yamlnode.Deref(doc)
	if root == nil || root.Kind != yaml.MappingNode {
		p.fail(file, "", root, "want a mapping with the key tenants")
		return nil
	}
	top := p.fields(file, root, []string{"tenants"}, "")
	list, ok := top["tenants"]
	switch {
	case !ok:
		p.fail(file, "tenants", root, "required")
		return nil
	case yamlnode.IsNull(list.value) || (list.value.Kind == yaml.SequenceNode && len(list.value.Content) == 0):
		p.fail(file, "tenants", list.keyN, "empty; want at least one tenant")
		return nil
	case list.value.Kind != yaml.SequenceNode:
		p.fail(file, "tenants", list.value, "want a list")
		return nil
	}
	out := make([]Tenant, 0, len(list.value.Content))
	names := map[string]int{}
	// A credential two tenants share would let one in at the other's
	// routes: a webhook signed with A's secret accepted on B's path, A's
	// token reading B. Keyed by value, reported by tenant, never printed.
	type credential struct {
		field string
		value config.Secret
	}
	seen := map[credential]int{}
	for i, item := range list.value.Content {
		t, n := p.tenant(i, yamlnode.Deref(item))
		if t.Name != "" {
			if j, dup := names[t.Name]; dup {
				p.fail(at{i, t.Name}, "name", n.name, "duplicate of tenants[%d]", j)
			} else {
				names[t.Name] = i
			}
		}
		for _, c := range []struct {
			credential
			node *yaml.Node
		}{
			{credential{"webhook_secret", t.WebhookSecret}, n.webhookSecret},
			{credential{"api_token", t.APIToken}, n.apiToken},
		} {
			if !c.value.IsSet() {
				continue
			}
			if j, dup := seen[c.credential]; dup {
				p.fail(at{i, t.Name}, c.field, c.node, "the same as tenants[%d]'s: each tenant needs its own, or one tenant's would open the other's routes", j)
			} else {
				seen[c.credential] = i
			}
		}
		out = append(out, t)
	}
	return out
}

// tenantNodes are the nodes of a tenant that checks across tenants point at.
type tenantNodes struct {
	name, webhookSecret, apiToken *yaml.Node
}

func (p *parser) tenant(i int, n *yaml.Node) (Tenant, tenantNodes) {
	var t Tenant
	var nodes tenantNodes
	if n == nil || n.Kind != yaml.MappingNode {
		p.fail(at{index: i}, "", n, "want a mapping with name, sccm, scom, servicenow, ...")
		return t, nodes
	}
	// The name first, so that every later problem names the tenant.
	w := at{index: i}
	f := p.fields(w, n, tenantFields, "")
	name, nameN := p.required(w, f, "name", "", n)
	// Even an invalid name is the best way to point at the tenant.
	w.name = name
	switch {
	case name == "":
	case name == DefaultName:
		p.fail(w, "name", nameN, "%q is reserved for the AUTOPATCH_* configuration, served at today's routes", DefaultName)
	case !ValidName(name):
		p.fail(w, "name", nameN, "%q is invalid: want a lower-case DNS label of at most %d characters (a-z, 0-9, '-' inside), e.g. acme or contoso-eu", name, MaxNameLength)
	default:
		t.Name = name
	}
	// Problems reported while reading the name carry no name yet.
	for _, e := range p.errs {
		if e.Index == i {
			e.Name = w.name
		}
	}

	t.SCCM = p.sites(w, f, n)
	if m := p.mapping(w, f, "scom", n); m != nil {
		sf := p.fields(w, m, scomFields, "scom.")
		t.SCOM.Endpoint = p.endpoint(w, sf, "endpoint", "scom.", m)
		t.SCOM.User, _ = p.required(w, sf, "user", "scom.", m)
		t.SCOM.Password = p.secret(w, sf, "password", "scom.", m)
		// Any name, as AUTOPATCH_SCOM_WINDOW_COMPUTER: SCOM knows its
		// computers, autopatch does not.
		t.SCOM.WindowComputer, _ = p.str(w, sf, "window_computer", "scom.")
	}
	if m := p.mapping(w, f, "servicenow", n); m != nil {
		sf := p.fields(w, m, serviceNowFields, "servicenow.")
		t.ServiceNow.URL = p.endpoint(w, sf, "url", "servicenow.", m)
		t.ServiceNow.User, _ = p.required(w, sf, "user", "servicenow.", m)
		t.ServiceNow.Password = p.secret(w, sf, "password", "servicenow.", m)
		// The password grant still sends the integration user's password:
		// the client is in addition to it, never instead.
		id, idN := p.str(w, sf, "oauth_client_id", "servicenow.")
		secret := p.optionalSecret(w, sf, "oauth_client_secret", "servicenow.", m)
		_, secretSet := sf["oauth_client_secret_env"]
		if _, ok := sf["oauth_client_secret_file"]; ok {
			secretSet = true
		}
		switch {
		case id != "" && !secretSet:
			p.fail(w, "servicenow.oauth_client_secret", idN, "required with oauth_client_id: name an environment variable (oauth_client_secret_env) or a file (oauth_client_secret_file) that holds it")
		case id == "" && secretSet:
			p.fail(w, "servicenow.oauth_client_id", refNode(sf, "oauth_client_secret", m), "required with oauth_client_secret_env or oauth_client_secret_file")
		}
		t.ServiceNow.OAuthClientID, t.ServiceNow.OAuthClientSecret = id, secret
	}
	// Any name, as AUTOPATCH_FORCE_COLLECTION: SCCM refuses an unknown or
	// default collection at the first wave, which then reaches a person
	// (README, "Deadlines and deferrals"), and autopatch doctor checks it.
	t.ForceCollection, _ = p.str(w, f, "force_collection", "")
	t.WinRM = p.winrm(w, f)
	t.MaxConns = p.maxConns(w, f)

	schedFile, schedN := p.required(w, f, "schedules_file", "", n)
	if schedFile != "" {
		t.SchedulesFile = p.path(schedFile)
		// Each schedule's site must be one of the tenant's (a single site
		// may be left unnamed), as serve checks AUTOPATCH_SCCM_SITES.
		if list, err := schedules.ReadFile(t.SchedulesFile); err != nil {
			p.fail(w, "schedules_file", schedN, "%v", err)
		} else if len(t.SCCM) > 0 {
			codes := make([]string, 0, len(t.SCCM))
			for _, site := range t.SCCM {
				codes = append(codes, site.Code)
			}
			if err := schedules.ResolveSites(list, codes); err != nil {
				p.fail(w, "schedules_file", schedN, "%s: %v", t.SchedulesFile, err)
			}
		}
	}
	if svcFile, svcN := p.str(w, f, "services_file", ""); svcFile != "" {
		t.ServicesFile = p.path(svcFile)
		if b, err := os.ReadFile(t.ServicesFile); err != nil {
			p.fail(w, "services_file", svcN, "%v", err)
		} else if _, err := safety.ParseServices(b); err != nil {
			p.fail(w, "services_file", svcN, "%s: %v", t.ServicesFile, err)
		}
	}
	t.WebhookSecret = p.secret(w, f, "webhook_secret", "", n)
	t.APIToken = p.secret(w, f, "api_token", "", n)
	nodes.name = nameN
	nodes.webhookSecret = refNode(f, "webhook_secret", n)
	nodes.apiToken = refNode(f, "api_token", n)
	return t, nodes
}

// winrm reads the optional winrm block. Each value is checked by the
// function that checks the process's setting of the same name
// (internal/config, and winrm.ReadCAFile for the CA bundle), so a tenant's
// and the process's rules cannot drift apart.
func (p *parser) winrm(w at, f map[string]pair) WinRMSettings {
	var s WinRMSettings
	wf, ok := f["winrm"]
	switch {
	case !ok || yamlnode.IsNull(wf.value):
		return s
	case wf.value.Kind != yaml.MappingNode:
		p.fail(w, "winrm", wf.value, "want a mapping with auth, ca_file, insecure_skip_verify or timeout")
		return s
	}
	m := wf.value
	sf := p.fields(w, m, winrmFields, "winrm.")
	if v, n := p.str(w, sf, "auth", "winrm."); v != "" {
		if err := config.CheckWinRMAuth(v); err != nil {
			p.fail(w, "winrm.auth", n, "%q is invalid: %v", v, err)
		} else {
			s.Auth = v
		}
	}
	if v, n := p.str(w, sf, "ca_file", "winrm."); v != "" {
		s.CAFile = p.path(v)
		if _, err := winrm.ReadCAFile(s.CAFile); err != nil {
			p.fail(w, "winrm.ca_file", n, "%v", err)
		}
	}
	if v, n := p.str(w, sf, "insecure_skip_verify", "winrm."); v != "" {
		if b, err := config.ParseBool(v); err != nil {
			p.fail(w, "winrm.insecure_skip_verify", n, "%q is invalid: %v", v, err)
		} else {
			// As AUTOPATCH_*_INSECURE_SKIP_VERIFY: allowed, and warned
			// about by the WinRM client of each of the tenant's servers at
			// start (its log line names the tenant and the host).
			s.InsecureSkipVerify = &b
		}
	}
	if v, n := p.str(w, sf, "timeout", "winrm."); v != "" {
		if d, err := config.ParseDuration(v); err != nil {
			p.fail(w, "winrm.timeout", n, "%q is invalid: %v", v, err)
		} else {
			s.Timeout = d
		}
	}
	return s
}

// maxConns reads the optional max_connections.
func (p *parser) maxConns(w at, f map[string]pair) int {
	v, n := p.str(w, f, "max_connections", "")
	if v == "" {
		return 0
	}
	c, err := strconv.Atoi(v)
	if err != nil || c < MinMaxConns || c > MaxMaxConns {
		p.fail(w, "max_connections", n, "%q is invalid: want a whole number from %d to %d", v, MinMaxConns, MaxMaxConns)
		return 0
	}
	return c
}

// refNode is the node of a secret's reference, for its line.
func refNode(f map[string]pair, key string, parent *yaml.Node) *yaml.Node {
	for _, k := range []string{key + "_env", key + "_file"} {
		if v, ok := f[k]; ok {
			return v.value
		}
	}
	return parent
}

// sites reads the list sccm: at least one site, each with its own code.
func (p *parser) sites(w at, f map[string]pair, parent *yaml.Node) []Site {
	list, ok := f["sccm"]
	switch {
	case !ok || yamlnode.IsNull(list.value) || (list.value.Kind == yaml.SequenceNode && len(list.value.Content) == 0):
		n := list.keyN
		if n == nil {
			n = parent
		}
		p.fail(w, "sccm", n, "required: want a list of at least one site ({site, endpoint, user, password_env or password_file})")
		return nil
	case list.value.Kind != yaml.SequenceNode:
		p.fail(w, "sccm", list.value, "want a list of sites")
		return nil
	}
	var out []Site
	codes := map[string]int{}
	for j, item := range list.value.Content {
		prefix := fmt.Sprintf("sccm[%d].", j)
		m := yamlnode.Deref(item)
		if m == nil || m.Kind != yaml.MappingNode {
			p.fail(w, fmt.Sprintf("sccm[%d]", j), m, "want a mapping with site, endpoint, user, password_env or password_file")
			continue
		}
		sf := p.fields(w, m, siteFields, prefix)
		var s Site
		code, codeN := p.required(w, sf, "site", prefix, m)
		switch {
		case code == "":
		case !siteRE.MatchString(code):
			p.fail(w, prefix+"site", codeN, "%q is not a site code: want three upper-case letters or digits (PS1)", code)
		default:
			if k, dup := codes[code]; dup {
				p.fail(w, prefix+"site", codeN, "%s is already sccm[%d]", code, k)
			} else {
				codes[code] = j
			}
			s.Code = code
		}
		s.Endpoint = p.endpoint(w, sf, "endpoint", prefix, m)
		s.User, _ = p.required(w, sf, "user", prefix, m)
		s.Password = p.secret(w, sf, "password", prefix, m)
		out = append(out, s)
	}
	return out
}
