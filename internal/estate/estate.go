// Package estate assembles the simulated estate of `autopatch sim`, the demo
// and the end-to-end tests (docs/architecture.md §4.5): one WinRM (WS-Management)
// listener that stands in for both the SCCM site server and the SCOM
// management server (a script goes to the simulator whose template it is), a
// ServiceNow instance (Table API) on its own listener, and a control server
// whose GET /state shows what the simulators hold. Everything listens on
// loopback ports chosen by the caller or the kernel, with credentials made up
// for the run.
//
// The ServiceNow listener is plain HTTP even when WinRM is HTTPS: autopatch's
// configuration has no CA setting for ServiceNow (a real instance has a
// public certificate), and the simulator only ever listens on loopback.
package estate

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/connectors/scom/scomsim"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/servicenow/servicenowsim"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// DefaultHost is where the estate listens unless Options.Host says otherwise.
const DefaultHost = "127.0.0.1"

// Options configure Start. The zero value starts an empty estate over HTTPS on
// kernel-chosen loopback ports.
type Options struct {
	// Seed is the estate's starting content; its Latency delays every WinRM call.
	Seed Seed
	// ScheduleCollections are the collections of the schedules file: each is
	// created if the seed does not have it.
	ScheduleCollections []string
	// Sites are the codes of further SCCM sites (docs/architecture.md
	// §10.1): each is a simulated site server of its own, on a WinRM
	// listener of its own with the estate's credentials and CA, and starts
	// with the seed's update groups. The seed's site (Seed.SiteCode) keeps
	// the main listener, with SCOM. Empty: one site, as before.
	Sites []string
	// SiteCollections are the schedules' collections at the sites of Sites,
	// by site code.
	SiteCollections map[string][]string

	// Host is the listen address; default DefaultHost.
	Host string
	// WinRMPort, ServiceNowPort and ControlPort are the ports; 0 lets the
	// kernel choose.
	WinRMPort      int
	ServiceNowPort int
	ControlPort    int
	// PlainHTTP serves WinRM over HTTP instead of HTTPS with a generated CA.
	PlainHTTP bool

	// User and Password are the WinRM (Basic) credentials, for SCCM and SCOM
	// alike; random when empty.
	User, Password string
	// ServiceNowUser and ServiceNowPassword are the ServiceNow integration
	// user's (Basic); random when empty.
	ServiceNowUser, ServiceNowPassword string
	// WebhookSecret and APIToken are handed to serve through the env file;
	// random when empty.
	WebhookSecret, APIToken string
	// Dir receives the CA file; empty means a temporary directory that Close
	// removes.
	Dir string

	// Now is the simulators' clock; default time.Now.
	Now func() time.Time
	// Logger receives the estate's logs; nil discards.
	Logger *slog.Logger

	// tlsCert, tlsKey and tlsCA, when set (StartTenants), are the WinRM
	// certificate, its key and its CA, shared by several estates; nil
	// generates the estate's own.
	tlsCert, tlsKey, tlsCA []byte
}

// State is GET /state: the shape of docs/architecture.md §4.5 (contract); each
// object may carry more fields than the contract names. Empty parts are
// empty arrays, never null.
type State struct {
	Collections []sccmsim.CollectionState `json:"collections"`
	Deployments []sccmsim.DeploymentState `json:"deployments"`
	// Alerts are SCOM's, in the order they were raised.
	Alerts []scomsim.AlertState `json:"alerts"`
	// Incidents (by number) and WorkNotes (oldest first, on every table)
	// are ServiceNow's.
	Incidents []servicenowsim.Incident `json:"incidents"`
	WorkNotes []servicenowsim.WorkNote `json:"work_notes"`
}

// part is one simulated system behind the shared WinRM listener: a script
// goes to the first part whose template set holds it.
type part struct {
	name    string
	handles func(script string) bool
	run     wsmansim.RunFunc
}

// Estate is a running simulated estate.
type Estate struct {
	opts   Options
	logger *slog.Logger

	sccm  *sccmsim.Site
	sites []*site // Options.Sites, in order
	scom  *scomsim.Group
	snow  *servicenowsim.Server
	wsman *wsmansim.Server
	parts []part

	winrmSrv, snowSrv, controlSrv *http.Server
	winrmURL, snowURL, controlURL string
	caPEM                         []byte
	caFile                        string
	dir                           string
	ownDir                        bool

	// down makes the WinRM listener answer 503 (SetWinRMDown); snowDown
	// does the same for ServiceNow (SetServiceNowDown).
	down, snowDown atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// Start builds the estate from opts and starts its listeners. ctx bounds
// start-up only: the estate runs until Close.
func Start(ctx context.Context, opts Options) (*Estate, error) {
	if err := opts.Seed.Validate(); err != nil {
		return nil, err
	}
	if opts.Host == "" {
		opts.Host = DefaultHost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, secret := range []*string{&opts.Password, &opts.ServiceNowPassword, &opts.WebhookSecret, &opts.APIToken} {
		if *secret == "" {
			*secret = randomHex(24)
		}
	}
	if opts.User == "" {
		opts.User = "autopatch-sim-" + randomHex(3)
	}
	if opts.ServiceNowUser == "" {
		opts.ServiceNowUser = "autopatch.integration." + randomHex(3)
	}

	e := &Estate{opts: opts, logger: opts.Logger}
	site, err := buildSite(opts)
	if err != nil {
		return nil, err
	}
	e.sccm = site
	e.parts = append(e.parts, part{name: "sccm", handles: site.Handles, run: site.Run})
	for _, code := range opts.Sites {
		x, err := buildExtraSite(opts, code)
		if err != nil {
			return nil, err
		}
		e.sites = append(e.sites, x)
	}
	group, err := buildGroup(opts)
	if err != nil {
		return nil, err
	}
	e.scom = group
	e.parts = append(e.parts, part{name: "scom", handles: group.Handles, run: group.Run})
	e.snow = servicenowsim.New(servicenowsim.Options{
		User: opts.ServiceNowUser, Password: opts.ServiceNowPassword, Clock: opts.Now, Logger: opts.Logger,
	})

	for _, seeded := range []struct {
		table   string
		records []SeedRecord
	}{{"change_request", opts.Seed.ChangeRequests}, {"sc_req_item", opts.Seed.RequestItems}} {
		for _, r := range seeded.records {
			if err := e.snow.AddRecord(seeded.table, r.ID(), r.Number); err != nil {
				return nil, fmt.Errorf("estate: %w", err)
			}
		}
	}

	e.wsman = wsmansim.New(wsmansim.Options{
		User: opts.User, Password: opts.Password, Latency: opts.Seed.Latency,
		Exec: wsmansim.PowerShell(e.exec), Logger: opts.Logger,
	})

	if err := e.start(ctx); err != nil {
		_ = e.Close()
		return nil, err
	}
	return e, nil
}

// buildSite makes the SCCM site of the seed and the schedules.
func buildSite(opts Options) (*sccmsim.Site, error) {
	site := sccmsim.New(sccmsim.Options{SiteCode: opts.Seed.SiteCode, Now: opts.Now, Logger: opts.Logger})
	for _, g := range opts.Seed.UpdateGroups {
		if err := site.AddUpdateGroup(g); err != nil {
			return nil, fmt.Errorf("estate: %w", err)
		}
	}
	for _, c := range opts.Seed.Collections {
		if err := site.AddCollection(c.Name, c.MaintenanceWindows); err != nil {
			return nil, fmt.Errorf("estate: %w", err)
		}
	}
	for _, c := range opts.ScheduleCollections {
		if err := site.AddCollection(c, 0); err != nil {
			return nil, fmt.Errorf("estate: schedule collection: %w", err)
		}
	}
	for _, d := range opts.Seed.Devices {
		outcome, err := sccmsim.ParseOutcome(d.Outcome)
		if err != nil {
			return nil, fmt.Errorf("estate: device %q: %w", d.Name, err)
		}
		if _, err := site.AddDevice(d.Name, outcome); err != nil {
			return nil, fmt.Errorf("estate: %w", err)
		}
		for _, c := range d.Collections {
			if err := site.AddCollection(c, 0); err != nil {
				return nil, fmt.Errorf("estate: %w", err)
			}
			if err := site.AddMember(c, d.Name); err != nil {
				return nil, fmt.Errorf("estate: %w", err)
			}
		}
	}
	return site, nil
}

// buildGroup makes the SCOM management group: every seed device is a
// Windows Computer unless it says scom: false.
func buildGroup(opts Options) (*scomsim.Group, error) {
	group := scomsim.New(scomsim.Options{Now: opts.Now, Logger: opts.Logger})
	for _, d := range opts.Seed.Devices {
		if !d.InSCOM() {
			continue
		}
		principal, netbios := d.SCOMNames(opts.Seed.SCOMDomain)
		if err := group.AddComputer(principal, netbios); err != nil {
			return nil, fmt.Errorf("estate: device %q: %w", d.Name, err)
		}
	}
	return group, nil
}

// exec hands a decoded invocation to the part whose template it is.
func (e *Estate) exec(ctx context.Context, script string, data []byte) ([]byte, string, int) {
	for _, p := range e.parts {
		if p.handles(script) {
			return p.run(ctx, script, data)
		}
	}
	e.logger.WarnContext(ctx, "estate: refused a script that is no simulator's template", "bytes", len(script))
	return nil, sccmsim.NotATemplateError(), 1
}

func (e *Estate) start(ctx context.Context) error {
	var lc net.ListenConfig
	winrmLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort(e.opts.Host, strconv.Itoa(e.opts.WinRMPort)))
	if err != nil {
		return fmt.Errorf("estate: winrm listener: %w", err)
	}
	snowLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort(e.opts.Host, strconv.Itoa(e.opts.ServiceNowPort)))
	if err != nil {
		_ = winrmLn.Close()
		return fmt.Errorf("estate: servicenow listener: %w", err)
	}
	controlLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort(e.opts.Host, strconv.Itoa(e.opts.ControlPort)))
	if err != nil {
		_ = winrmLn.Close()
		_ = snowLn.Close()
		return fmt.Errorf("estate: control listener: %w", err)
	}
	advertised := advertisedHost(e.opts.Host)

	winrmMux := http.NewServeMux()
	winrmMux.HandleFunc("/wsman", func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		e.wsman.ServeHTTP(w, r)
	})
	// Handshake failures (a client without the CA) are the client's news, not ours.
	errorLog := slog.NewLogLogger(e.logger.Handler(), slog.LevelDebug)
	e.winrmSrv = &http.Server{Handler: winrmMux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	scheme := "http"
	if !e.opts.PlainHTTP {
		scheme = "https"
		certPEM, keyPEM, caPEM := e.opts.tlsCert, e.opts.tlsKey, e.opts.tlsCA
		var err error
		if certPEM == nil {
			certPEM, keyPEM, caPEM, err = wsmansim.NewTLSCert(e.opts.Host, advertised)
		}
		if err != nil {
			_ = winrmLn.Close()
			_ = snowLn.Close()
			_ = controlLn.Close()
			return fmt.Errorf("estate: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			_ = winrmLn.Close()
			_ = snowLn.Close()
			_ = controlLn.Close()
			return fmt.Errorf("estate: tls: %w", err)
		}
		if err := e.writeCA(caPEM); err != nil {
			_ = winrmLn.Close()
			_ = snowLn.Close()
			_ = controlLn.Close()
			return err
		}
		e.winrmSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		winrmLn = tls.NewListener(winrmLn, e.winrmSrv.TLSConfig)
	}
	e.winrmURL = scheme + "://" + net.JoinHostPort(advertised, port(winrmLn)) + "/wsman"

	snowHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.snowDown.Load() {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		e.snow.ServeHTTP(w, r)
	})
	e.snowSrv = &http.Server{Handler: snowHandler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	e.snowURL = "http://" + net.JoinHostPort(advertised, port(snowLn))

	controlMux := http.NewServeMux()
	controlMux.HandleFunc("GET /state", e.serveState)
	controlMux.HandleFunc("POST /fault", e.serveFault)
	controlMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	e.controlSrv = &http.Server{Handler: controlMux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	e.controlURL = "http://" + net.JoinHostPort(advertised, port(controlLn))

	for _, x := range e.sites {
		if err := e.startSite(ctx, x, scheme, advertised, errorLog); err != nil {
			_ = winrmLn.Close()
			_ = snowLn.Close()
			_ = controlLn.Close()
			return err
		}
	}

	go e.serve("winrm", e.winrmSrv, winrmLn)
	go e.serve("servicenow", e.snowSrv, snowLn)
	go e.serve("control", e.controlSrv, controlLn)
	e.logger.Info("estate: listening", "winrm", e.winrmURL, "servicenow", e.snowURL, "control", e.controlURL)
	return nil
}

func (e *Estate) serve(name string, srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		e.logger.Error("estate: server stopped", "server", name, "error", err)
	}
}

// writeCA writes the CA certificate clients must trust.
func (e *Estate) writeCA(caPEM []byte) error {
	e.dir = e.opts.Dir
	if e.dir == "" {
		dir, err := os.MkdirTemp("", "autopatch-sim-")
		if err != nil {
			return fmt.Errorf("estate: %w", err)
		}
		e.dir, e.ownDir = dir, true
	}
	e.caPEM = caPEM
	e.caFile = filepath.Join(e.dir, "autopatch-sim-ca.pem")
	if err := os.WriteFile(e.caFile, caPEM, 0o644); err != nil {
		return fmt.Errorf("estate: write CA file: %w", err)
	}
	return nil
}

// advertisedHost is the host clients should dial: the listen host, or
// loopback when listening on every interface.
func advertisedHost(host string) string {
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return DefaultHost
	}
	return host
}

func port(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}

// Close stops the listeners, ends running WinRM commands and removes the
// temporary directory. It is safe to call more than once.
func (e *Estate) Close() error {
	e.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var errs []error
		servers := []*http.Server{e.winrmSrv, e.snowSrv, e.controlSrv}
		for _, x := range e.sites {
			servers = append(servers, x.srv)
			if x.wsman != nil {
				defer x.wsman.Close()
			}
		}
		for _, srv := range servers {
			if srv == nil {
				continue
			}
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, err)
				_ = srv.Close()
			}
		}
		if e.wsman != nil {
			e.wsman.Close()
		}
		if e.ownDir {
			if err := os.RemoveAll(e.dir); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			e.closeErr = fmt.Errorf("estate: close: %w", err)
		}
	})
	return e.closeErr
}

// State returns what the simulators hold now.
func (e *Estate) State() State {
	site := e.sccm.State()
	for _, x := range e.sites {
		more := x.site.State()
		site.Collections = append(site.Collections, more.Collections...)
		site.Deployments = append(site.Deployments, more.Deployments...)
	}
	return State{
		Collections: site.Collections,
		Deployments: site.Deployments,
		Alerts:      e.scom.Alerts(),
		Incidents:   e.snow.Incidents(),
		WorkNotes:   e.snow.WorkNotes(),
	}
}

func (e *Estate) serveState(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(e.State(), "", "  ")
	if err != nil {
		http.Error(w, "estate: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

// SetWinRMDown makes the WinRM listener answer every request with 503 Service
// Unavailable (down true), like a host whose WinRM service is stopping, until
// called with false. Clients see winrm.ErrUnreachable; nothing reaches the
// SCCM or SCOM simulator. For tests of retries and late or missed windows.
// (ServiceNow outages: ServiceNow().FailNext.)
func (e *Estate) SetWinRMDown(down bool) { e.down.Store(down) }

// SetServiceNowDown makes the ServiceNow listener answer every request with
// 503 Service Unavailable (down true), as an instance in maintenance does,
// until called with false. Nothing reaches the simulated instance.
func (e *Estate) SetServiceNowDown(down bool) { e.snowDown.Store(down) }

// Fault is the body of POST /fault on the control port: "down" or "up" for
// each system named, for a while when For is set (then back up), e.g.
// {"winrm":"down","servicenow":"down","for":"5s"}. The crash suite
// (internal/chaos) uses it to make the estate unavailable for a while.
type Fault struct {
	WinRM      string `json:"winrm,omitempty"`
	ServiceNow string `json:"servicenow,omitempty"`
	For        string `json:"for,omitempty"`
}

// Apply applies f; with f.For the systems it names come back up after that
// long.
func (e *Estate) Apply(f Fault) error {
	var sets []func(bool)
	var downs []bool
	for _, c := range []struct {
		state string
		set   func(bool)
	}{{f.WinRM, e.SetWinRMDown}, {f.ServiceNow, e.SetServiceNowDown}} {
		switch c.state {
		case "":
			continue
		case "down", "up":
			sets, downs = append(sets, c.set), append(downs, c.state == "down")
		default:
			return fmt.Errorf("estate: fault: %q is neither \"down\" nor \"up\"", c.state)
		}
	}
	var d time.Duration
	if f.For != "" {
		var err error
		if d, err = time.ParseDuration(f.For); err != nil || d <= 0 {
			return fmt.Errorf("estate: fault: for: %q is not a positive duration", f.For)
		}
	}
	for i, set := range sets {
		set(downs[i])
	}
	if d > 0 {
		time.AfterFunc(d, func() {
			for _, set := range sets {
				set(false)
			}
		})
	}
	return nil
}

func (e *Estate) serveFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&f); err != nil {
		http.Error(w, "estate: fault: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := e.Apply(f); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SCCM returns the simulated site, for tests that seed or inspect it directly.
func (e *Estate) SCCM() *sccmsim.Site { return e.sccm }

// SCOM returns the simulated management group, for tests that inspect its
// alerts, hold its rule (HoldAlerts) or close alerts as an operator would.
func (e *Estate) SCOM() *scomsim.Group { return e.scom }

// ServiceNow returns the simulated instance, for tests and the demo that seed
// the change requests and request items their webhooks name (AddRecord) or
// inject faults.
func (e *Estate) ServiceNow() *servicenowsim.Server { return e.snow }

// WSMan returns the WinRM server, whose Stats count requests and executions.
func (e *Estate) WSMan() *wsmansim.Server { return e.wsman }

// SCCMEndpoint is the WinRM URL of the simulated site server.
func (e *Estate) SCCMEndpoint() string { return e.winrmURL }

// SCOMEndpoint is the WinRM URL of the simulated management server: the same
// listener and credentials as SCCMEndpoint.
func (e *Estate) SCOMEndpoint() string { return e.winrmURL }

// ServiceNowURL is the base URL of the simulated instance (plain HTTP, loopback).
func (e *Estate) ServiceNowURL() string { return e.snowURL }

// ServiceNowUser is the instance's integration user (Basic).
func (e *Estate) ServiceNowUser() string { return e.opts.ServiceNowUser }

// ServiceNowPassword is the password of ServiceNowUser.
func (e *Estate) ServiceNowPassword() string { return e.opts.ServiceNowPassword }

// ServiceNowConfig returns a servicenow.Config that reaches the simulated instance.
func (e *Estate) ServiceNowConfig() servicenow.Config {
	return servicenow.Config{URL: e.snowURL, User: e.opts.ServiceNowUser, Password: e.opts.ServiceNowPassword}
}

// ControlURL is the base URL of the control server (GET /state).
func (e *Estate) ControlURL() string { return e.controlURL }

// CAFile is the path of the PEM CA the WinRM certificate chains to; empty
// with PlainHTTP.
func (e *Estate) CAFile() string { return e.caFile }

// CAPEM is the CA certificate itself; nil with PlainHTTP.
func (e *Estate) CAPEM() []byte { return e.caPEM }

// User and Password are the WinRM credentials (Basic).
func (e *Estate) User() string { return e.opts.User }

// Password is the WinRM password of User.
func (e *Estate) Password() string { return e.opts.Password }

// WebhookSecret is the HMAC secret the env file gives serve.
func (e *Estate) WebhookSecret() string { return e.opts.WebhookSecret }

// APIToken is the read API bearer token the env file gives serve.
func (e *Estate) APIToken() string { return e.opts.APIToken }

// WinRMConfig returns a winrm.Config that reaches the simulated site server
// and management server, with certificate checks against the estate's CA.
func (e *Estate) WinRMConfig() winrm.Config {
	return winrm.Config{
		Endpoint: e.winrmURL, User: e.opts.User, Password: e.opts.Password,
		Auth: winrm.AuthBasic, CAFile: e.caFile,
	}
}

// Env returns the AUTOPATCH_* settings that point serve at the estate, as
// KEY=value lines in a fixed order.
func (e *Estate) Env() []string {
	var env []string
	if len(e.sites) > 0 {
		codes := []string{e.sccm.SiteCode()}
		for _, x := range e.sites {
			codes = append(codes, x.site.SiteCode())
		}
		env = append(env, "AUTOPATCH_SCCM_SITES="+strings.Join(codes, ","))
		for _, code := range codes {
			env = append(env, "AUTOPATCH_SCCM_"+code+"_ENDPOINT="+e.SiteEndpoint(code))
		}
	}
	for _, system := range []string{"SCCM", "SCOM"} {
		prefix := "AUTOPATCH_" + system + "_"
		if system == "SCOM" || len(e.sites) == 0 {
			env = append(env, prefix+"ENDPOINT="+e.winrmURL)
		}
		env = append(env,
			prefix+"USER="+e.opts.User,
			prefix+"PASSWORD="+e.opts.Password,
			prefix+"AUTH="+winrm.AuthBasic,
		)
		if e.caFile != "" {
			env = append(env, prefix+"CA_FILE="+e.caFile)
		}
	}
	return append(env,
		"AUTOPATCH_SERVICENOW_URL="+e.snowURL,
		"AUTOPATCH_SERVICENOW_USER="+e.opts.ServiceNowUser,
		"AUTOPATCH_SERVICENOW_PASSWORD="+e.opts.ServiceNowPassword,
		"AUTOPATCH_WEBHOOK_SECRET="+e.opts.WebhookSecret,
		"AUTOPATCH_API_TOKEN="+e.opts.APIToken,
		"AUTOPATCH_SIM_URL="+e.controlURL,
	)
}

// WriteEnvFile writes Env to path (mode 0600: it holds secrets), replacing it
// atomically. The lines are plain KEY=value, readable by a shell's `.`, by
// systemd's EnvironmentFile and by docker's --env-file.
func (e *Estate) WriteEnvFile(path string) error {
	var b strings.Builder
	b.WriteString("# Written by autopatch sim: points autopatch serve at the simulated estate.\n")
	for _, line := range e.Env() {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("estate: env file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.WriteString(b.String()); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("estate: env file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("estate: env file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("estate: env file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("estate: env file: %w", err)
	}
	return nil
}
