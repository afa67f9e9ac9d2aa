// Package wsmansim is a WS-Management server that behaves like a Windows host's
// WinRM service for the shell protocol masterzen/winrm speaks: Create shell,
// Command, Send (stdin), Receive (stdout/stderr/exit code), Signal and Delete,
// with Basic authentication, SOAP faults as Windows sends them, a per-user shell
// quota, MaxEnvelopeSize and idle shell clean-up.
//
// Commands run through cmd.exe (WINRS_SKIP_CMD_SHELL=FALSE), and the simulator
// plays the part of cmd.exe autopatch relies on: the 8,191-character limit after
// %TEMP% expansion, `>"%TEMP%\f" echo <base64>` and `>>` to write a file in the
// user's %TEMP% (which outlives the shell, as on Windows), `program <"%TEMP%\f"`
// to give a program that file as stdin, and `del /q "%TEMP%\f"`.
//
// WinRS stdin is modelled on the evidence about WINRS_CONSOLEMODE_STDIN. In pipe
// mode (FALSE) a Send with End="true" closes the process's stdin, so a reader
// sees end-of-input. In console mode (TRUE, masterzen/winrm's only mode, and
// WinRS's default) nothing documents that End="true" reaches a reader as
// end-of-input, and the clients that send stdin switch to pipe mode for exactly
// that reason: Ansible's winrm connection plugin passes
// console_mode_stdin=(stdin_iterator is None)
// (https://github.com/ansible/ansible/blob/devel/lib/ansible/plugins/connection/winrm.py),
// pywinrm runs `powershell.exe -` only with End=true in pipe mode
// (https://github.com/diyan/pywinrm/pull/271), and a WinRM client documents that
// console-mode stdin does not reach EOF for readers such as sort or more
// (https://github.com/MetricsHub/winrm-java/pull/144). MS-WSMV defines the option
// without saying more
// (https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wsmv/c793e333-c409-43c6-a2eb-6ae2489c7ef4).
// So a program that reads stdin to its end (the bootstrap fed over WinRS stdin)
// never starts its work in console mode: it hangs until the client gives up,
// and Stats.StdinNeverEnded counts it. autopatch's client never sends stdin.
//
// What the "process" does is up to Options.Exec; PowerShell adapts it to
// autopatch's bootstrap so a simulator only sees (template text, data JSON).
// Mount a Server at /wsman under httptest or a real listener, HTTP or HTTPS
// (see NewTLSCert).
package wsmansim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/autopatch/autopatch/connectors/winrm"
)

// ExecFunc plays the process started by a Command: it gets the command line and
// the complete stdin and returns what the process wrote and its exit code. A
// program started as `program <"%TEMP%\f"` (autopatch's client) gets "program"
// and the file's content, after Options.Latency. The bare bootstrap
// (winrm.CommandLine()) reading WinRS stdin runs once a Send with End="true"
// arrives in pipe mode, and never in console mode (see the package comment). Any
// other command line is treated as a program that does not read stdin: it runs
// right away (after Latency) with empty stdin, and later stdin is discarded.
// ctx is cancelled when the client signals terminate, deletes the shell, the shell
// idles out or the Server is closed.
type ExecFunc func(ctx context.Context, commandLine string, stdin []byte) (stdout, stderr []byte, exitCode int)

// Options configure a Server. Zero values mean Windows' defaults.
type Options struct {
	// User and Password are the only credentials accepted (Basic).
	User, Password string
	// Latency delays every command between the end of stdin and Exec, like
	// powershell.exe starting and importing the ConfigurationManager module.
	Latency time.Duration
	// Exec runs commands; nil answers every command as cmd.exe does an unknown
	// program (exit 1).
	Exec   ExecFunc
	Logger *slog.Logger

	// MaxEnvelopeSize is the largest request accepted, in bytes; 0 means
	// 512000 (MaxEnvelopeSizekb 500).
	MaxEnvelopeSize int
	// MaxShellsPerUser is the shell quota; 0 means 30.
	MaxShellsPerUser int
	// IdleTimeout removes (and terminates) a shell no request has touched for
	// that long; 0 means 2h (Windows' IdleTimeout).
	IdleTimeout time.Duration
	// MaxOperationTimeout caps how long one Receive waits for output before
	// answering the TimedOut fault the client polls on; 0 means 60s. The
	// client's OperationTimeout header is honoured below the cap.
	MaxOperationTimeout time.Duration
}

const (
	defaultMaxEnvelopeSize  = 500 * 1024
	defaultMaxShellsPerUser = 30
	defaultIdleTimeout      = 2 * time.Hour
	defaultOperationTimeout = 60 * time.Second
	// receiveOverhead is what a ReceiveResponse needs besides the stream data.
	receiveOverhead = 4096
	// sweepEvery limits how often requests look for idle shells.
	sweepEvery = time.Second
)

// Stats counts what the server saw; for tests and the simulator's state page.
type Stats struct {
	// Shells is the number of open shells.
	Shells int
	// Requests counts authenticated requests by action: Create, Command, Send,
	// Receive, Signal, Delete, or Other.
	Requests map[string]int
	// Unauthorized counts requests answered 401.
	Unauthorized int
	// ReceiveTimeouts counts Receives answered with the TimedOut fault.
	ReceiveTimeouts int
	// Executions counts Exec calls.
	Executions int
	// TempFiles is the number of files in the user's %TEMP%: a call that
	// cleans up after itself leaves none.
	TempFiles int
	// StdinNeverEnded counts console-mode commands that read stdin and got
	// End="true": on Windows they would wait for end-of-input forever.
	StdinNeverEnded int
}

// Server is a simulated WinRM service. It is safe for concurrent use.
type Server struct {
	opts   Options
	logger *slog.Logger
	now    func() time.Time // replaced in tests

	mu        sync.Mutex
	shells    map[string]*shell
	files     map[string][]byte // the user's %TEMP%, by lower-case name (NTFS ignores case)
	lastSweep time.Time
	stats     Stats
	running   sync.WaitGroup // Exec goroutines
}

type shell struct {
	id       string
	ctx      context.Context
	cancel   context.CancelFunc
	commands map[string]*command
	lastUsed time.Time
	inFlight int // requests being served, e.g. a long-poll Receive
}

type command struct {
	id          string
	commandLine string
	ctx         context.Context
	cancel      context.CancelFunc
	stdin       bytes.Buffer
	stdinDone   bool
	consoleMode bool          // WINRS_CONSOLEMODE_STDIN: End="true" never reaches the reader
	done        chan struct{} // closed when the process ended (or never started)

	// Set before done is closed.
	stdout, stderr []byte
	exitCode       int
	aborted        bool // terminated before Exec ran
	// Receive progress.
	sentOut, sentErr int
}

// New returns a Server; it starts nothing until requests arrive.
func New(opts Options) *Server {
	if opts.MaxEnvelopeSize <= 0 {
		opts.MaxEnvelopeSize = defaultMaxEnvelopeSize
	}
	if opts.MaxShellsPerUser <= 0 {
		opts.MaxShellsPerUser = defaultMaxShellsPerUser
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = defaultIdleTimeout
	}
	if opts.MaxOperationTimeout <= 0 {
		opts.MaxOperationTimeout = defaultOperationTimeout
	}
	if opts.Exec == nil {
		opts.Exec = func(_ context.Context, commandLine string, _ []byte) ([]byte, []byte, int) {
			return nil, []byte(cmdNotRecognized(commandLine)), 1
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		opts:   opts,
		logger: logger,
		now:    time.Now,
		shells: make(map[string]*shell),
		files:  make(map[string][]byte),
		stats:  Stats{Requests: make(map[string]int)},
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(true)
	st := s.stats
	st.Shells = len(s.shells)
	st.TempFiles = len(s.files)
	st.Requests = make(map[string]int, len(s.stats.Requests))
	for k, v := range s.stats.Requests {
		st.Requests[k] = v
	}
	return st
}

// Close terminates every shell and waits for running Exec calls to return
// (they get a cancelled ctx). The Server still answers afterwards.
func (s *Server) Close() {
	s.mu.Lock()
	for id, sh := range s.shells {
		sh.cancel()
		delete(s.shells, id)
	}
	s.mu.Unlock()
	s.running.Wait()
}

// ServeHTTP answers one WS-Management request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if !s.authorized(r) {
		s.mu.Lock()
		s.stats.Unauthorized++
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="WSMAN"`)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if !strings.Contains(r.Header.Get("Content-Type"), "application/soap+xml") {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	machine := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		machine = h
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.opts.MaxEnvelopeSize)+1))
	if err != nil {
		return // client went away
	}
	if len(body) > s.opts.MaxEnvelopeSize {
		writeFault(w, machine, "", faultTooLarge(s.opts.MaxEnvelopeSize))
		return
	}
	req, err := parseRequest(body)
	if err != nil {
		writeFault(w, machine, "", faultBadRequest())
		return
	}
	relates := strings.TrimSpace(req.Header.MessageID)
	action := strings.TrimSpace(req.Header.Action)
	s.count(action)
	s.logger.Debug("wsmansim request", "action", action, "bytes", len(body))

	if action != actionCreate && action != actionDelete && action != actionCommand &&
		action != actionSend && action != actionReceive && action != actionSignal {
		writeFault(w, machine, relates, faultActionNotSupported(action))
		return
	}
	if uri := strings.TrimSpace(req.Header.ResourceURI); uri != resourceCmd {
		writeFault(w, machine, relates, faultResourceNotFound(uri))
		return
	}

	var f *fault
	switch action {
	case actionCreate:
		f = s.create(w, req, relates)
	case actionCommand:
		f = s.command(w, req, relates)
	case actionSend:
		f = s.send(w, req, relates)
	case actionReceive:
		f = s.receive(w, r, req, relates)
	case actionSignal:
		f = s.signal(w, req, relates)
	case actionDelete:
		f = s.delete(w, req, relates)
	}
	if f != nil {
		writeFault(w, machine, relates, *f)
	}
}

func (s *Server) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.User))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.Password))
	return u&p == 1
}

func (s *Server) count(action string) {
	name := "Other"
	switch action {
	case actionCreate:
		name = "Create"
	case actionCommand:
		name = "Command"
	case actionSend:
		name = "Send"
	case actionReceive:
		name = "Receive"
	case actionSignal:
		name = "Signal"
	case actionDelete:
		name = "Delete"
	}
	s.mu.Lock()
	s.stats.Requests[name]++
	s.sweepLocked(false)
	s.mu.Unlock()
}

// sweepLocked removes shells idle for longer than IdleTimeout, terminating their
// commands, as WinRM does. It runs on requests rather than on a timer so a
// Server needs no goroutine of its own.
func (s *Server) sweepLocked(force bool) {
	now := s.now()
	if !force && now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	for id, sh := range s.shells {
		if sh.inFlight == 0 && now.Sub(sh.lastUsed) > s.opts.IdleTimeout {
			s.logger.Info("wsmansim: idle shell removed", "shell", id)
			sh.cancel()
			delete(s.shells, id)
		}
	}
}

// acquire finds a shell and marks it busy; release must follow.
func (s *Server) acquire(id string) (*shell, *fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.shells[id]
	if !ok {
		f := faultShellNotFound(id)
		return nil, &f
	}
	sh.inFlight++
	sh.lastUsed = s.now()
	return sh, nil
}

func (s *Server) release(sh *shell) {
	s.mu.Lock()
	sh.inFlight--
	sh.lastUsed = s.now()
	s.mu.Unlock()
}

func (s *Server) create(w http.ResponseWriter, req *request, relates string) *fault {
	if req.Body.Shell == nil {
		f := faultBadRequest()
		return &f
	}
	s.mu.Lock()
	if len(s.shells) >= s.opts.MaxShellsPerUser {
		s.mu.Unlock()
		f := faultQuota(s.opts.MaxShellsPerUser)
		return &f
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh := &shell{
		id:       strings.ToUpper(uuid.NewString()),
		ctx:      ctx,
		cancel:   cancel,
		commands: make(map[string]*command),
		lastUsed: s.now(),
	}
	s.shells[sh.id] = sh
	s.mu.Unlock()

	body := `<x:ResourceCreated><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>` +
		`<a:ReferenceParameters><w:ResourceURI>` + resourceCmd + `</w:ResourceURI><w:SelectorSet>` +
		`<w:Selector Name="ShellId">` + sh.id + `</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>` +
		`<rsp:Shell xmlns:rsp="` + nsShell + `"><rsp:ShellId>` + sh.id + `</rsp:ShellId>` +
		`<rsp:ResourceUri>` + resourceCmd + `</rsp:ResourceUri><rsp:Owner>` + esc(s.opts.User) + `</rsp:Owner>` +
		`<rsp:ClientIP>127.0.0.1</rsp:ClientIP>` +
		`<rsp:IdleTimeOut>PT` + strconv.FormatFloat(s.opts.IdleTimeout.Seconds(), 'f', 3, 64) + `S</rsp:IdleTimeOut>` +
		`<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>` +
		`<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>`
	writeEnvelope(w, http.StatusOK, "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", relates, body)
	return nil
}

func (s *Server) command(w http.ResponseWriter, req *request, relates string) *fault {
	sh, f := s.acquire(req.selector("ShellId"))
	if f != nil {
		return f
	}
	defer s.release(sh)
	cl := req.Body.CommandLine
	if cl == nil || cl.Command == "" {
		f := faultInvalidParameter()
		return &f
	}
	line := cl.Command
	if len(cl.Arguments) > 0 {
		line += " " + strings.Join(cl.Arguments, " ")
	}
	// WinRS's default, like masterzen/winrm's constant, is console mode.
	mode, ok := req.option("WINRS_CONSOLEMODE_STDIN")
	consoleMode := !ok || !strings.EqualFold(mode, "FALSE")
	ctx, cancel := context.WithCancel(sh.ctx)
	cmd := &command{
		id:          strings.ToUpper(uuid.NewString()),
		commandLine: line,
		ctx:         ctx,
		cancel:      cancel,
		done:        make(chan struct{}),
		consoleMode: consoleMode,
	}
	s.mu.Lock()
	sh.commands[cmd.id] = cmd
	s.mu.Unlock()
	s.cmdExe(cmd, line)
	body := `<rsp:CommandResponse><rsp:CommandId>` + cmd.id + `</rsp:CommandId></rsp:CommandResponse>`
	writeEnvelope(w, http.StatusOK, actionCommand+"Response", relates, body)
	return nil
}

// lookupCommand finds a command of a busy shell.
func (s *Server) lookupCommand(sh *shell, id string) (*command, *fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd, ok := sh.commands[strings.TrimSpace(id)]
	if !ok {
		f := faultInvalidParameter()
		return nil, &f
	}
	return cmd, nil
}

func (s *Server) send(w http.ResponseWriter, req *request, relates string) *fault {
	sh, f := s.acquire(req.selector("ShellId"))
	if f != nil {
		return f
	}
	defer s.release(sh)
	if req.Body.Send == nil {
		f := faultInvalidParameter()
		return &f
	}
	for _, st := range req.Body.Send.Streams {
		if st.Name != "stdin" {
			f := faultInvalidParameter()
			return &f
		}
		cmd, f := s.lookupCommand(sh, st.CommandID)
		if f != nil {
			return f
		}
		chunk, err := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Data))
		if err != nil {
			f := faultInvalidParameter()
			return &f
		}
		end, _ := strconv.ParseBool(st.End)
		s.mu.Lock()
		if end && !cmd.stdinDone && cmd.consoleMode {
			// Console mode: the bytes reach the console input, End="true"
			// does not end it; the reader waits on (see the package comment).
			cmd.stdinDone = true
			s.stats.StdinNeverEnded++
			s.mu.Unlock()
			s.logger.Warn("wsmansim: stdin ended in console mode; the process never sees end-of-input", "command", cmd.id)
			continue
		}
		if cmd.stdinDone {
			// A process that does not read stdin (or has it all): the
			// bytes go into a pipe nobody reads, as on Windows.
			s.mu.Unlock()
			continue
		}
		cmd.stdin.Write(chunk)
		var stdin []byte
		if end {
			cmd.stdinDone = true
			stdin = bytes.Clone(cmd.stdin.Bytes())
			cmd.stdin = bytes.Buffer{}
		}
		s.mu.Unlock()
		if end {
			s.start(cmd, stdin)
		}
	}
	writeEnvelope(w, http.StatusOK, actionSend+"Response", relates, `<rsp:SendResponse/>`)
	return nil
}

// userTemp is what %TEMP% expands to for the simulated user, for the length
// limit: a typical profile path.
const userTemp = `C:\Users\autopatch-svc\AppData\Local\Temp`

// The cmd.exe forms autopatch uses (see winrm.Commands). A file name is one
// path element of %TEMP%; anything else is left to Exec, which refuses it.
var (
	echoToFile    = regexp.MustCompile(`^(>>?)"%TEMP%\\([A-Za-z0-9._-]+)" echo ([A-Za-z0-9+/=]+)$`)
	stdinFromFile = regexp.MustCompile(`^(.+) <"%TEMP%\\([A-Za-z0-9._-]+)"$`)
	delFile       = regexp.MustCompile(`^del /q "%TEMP%\\([A-Za-z0-9._-]+)"$`)
)

// cmdExe plays cmd.exe /c line: its length limit, echo into a file, stdin from
// a file and del, done at once; any other program goes to Exec, right away if it
// does not read WinRS stdin, once stdin has ended if it does.
func (s *Server) cmdExe(cmd *command, line string) {
	finish := func(stdout, stderr string, code int) {
		s.mu.Lock()
		cmd.stdinDone = true
		cmd.stdout, cmd.stderr, cmd.exitCode = []byte(stdout), []byte(stderr), code
		s.mu.Unlock()
		close(cmd.done)
	}
	if len(strings.ReplaceAll(line, "%TEMP%", userTemp)) > winrm.MaxCommandLine {
		finish("", "The command line is too long.\r\n", 1)
		return
	}
	if m := echoToFile.FindStringSubmatch(line); m != nil {
		name := strings.ToLower(m[2])
		s.mu.Lock()
		if m[1] == ">" {
			s.files[name] = nil
		}
		s.files[name] = append(s.files[name], m[3]+"\r\n"...)
		s.mu.Unlock()
		finish("", "", 0)
		return
	}
	if m := delFile.FindStringSubmatch(line); m != nil {
		name := strings.ToLower(m[1])
		s.mu.Lock()
		_, ok := s.files[name]
		delete(s.files, name)
		s.mu.Unlock()
		if !ok {
			finish("", "Could Not Find "+userTemp+`\`+m[1]+"\r\n", 0)
			return
		}
		finish("", "", 0)
		return
	}
	if m := stdinFromFile.FindStringSubmatch(line); m != nil {
		s.mu.Lock()
		content, ok := s.files[strings.ToLower(m[2])]
		content = bytes.Clone(content)
		s.mu.Unlock()
		if !ok {
			finish("", "The system cannot find the file specified.\r\n", 1)
			return
		}
		// The program reads the file and sees its end; WinRS stdin is not
		// connected to it.
		cmd.commandLine = m[1]
		s.mu.Lock()
		cmd.stdinDone = true
		s.mu.Unlock()
		s.start(cmd, content)
		return
	}
	// Only the bootstrap reads stdin. Any other program is one that, like
	// whoami on Windows, runs and exits whether or not stdin is ever closed;
	// waiting for End="true" would hang a client that never sends it.
	if line == winrm.CommandLine() {
		return // started by the Send with End="true", in pipe mode only
	}
	s.mu.Lock()
	cmd.stdinDone = true
	s.mu.Unlock()
	s.start(cmd, nil)
}

// start runs the process once its stdin is complete.
func (s *Server) start(cmd *command, stdin []byte) {
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		defer close(cmd.done)
		if s.opts.Latency > 0 {
			t := time.NewTimer(s.opts.Latency)
			select {
			case <-t.C:
			case <-cmd.ctx.Done():
				t.Stop()
				s.mu.Lock()
				cmd.aborted = true
				s.mu.Unlock()
				return
			}
		}
		s.mu.Lock()
		s.stats.Executions++
		s.mu.Unlock()
		stdout, stderr, code := s.exec(cmd.ctx, cmd.commandLine, stdin)
		s.mu.Lock()
		cmd.stdout, cmd.stderr, cmd.exitCode = stdout, stderr, code
		s.mu.Unlock()
	}()
}

// exec calls Options.Exec and turns a panic into a failed process.
func (s *Server) exec(ctx context.Context, line string, stdin []byte) (stdout, stderr []byte, code int) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("wsmansim: exec panicked", "panic", p)
			stdout, stderr, code = nil, []byte(fmt.Sprintf("process crashed: %v", p)), 1
		}
	}()
	return s.opts.Exec(ctx, line, stdin)
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request, req *request, relates string) *fault {
	sh, f := s.acquire(req.selector("ShellId"))
	if f != nil {
		return f
	}
	defer s.release(sh)
	if req.Body.Receive == nil {
		f := faultInvalidParameter()
		return &f
	}
	cmd, f := s.lookupCommand(sh, req.Body.Receive.DesiredStream.CommandID)
	if f != nil {
		return f
	}
	wait := s.opts.MaxOperationTimeout
	if d, ok := parseOperationTimeout(req.Header.OperationTimeout); ok && d > 0 && d < wait {
		wait = d
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-cmd.done:
	case <-cmd.ctx.Done():
	case <-timer.C:
		s.mu.Lock()
		s.stats.ReceiveTimeouts++
		s.mu.Unlock()
		f := faultTimedOut()
		return &f
	case <-r.Context().Done():
		return nil // the client is gone; nobody reads an answer
	}
	// Terminated before it produced anything (signal, delete, idle, Close).
	s.mu.Lock()
	aborted := cmd.aborted
	s.mu.Unlock()
	select {
	case <-cmd.done:
	default:
		aborted = true
	}
	if aborted {
		f := faultAborted()
		return &f
	}

	// Send what fits the smaller of the client's and our envelope size; the
	// client keeps receiving until it sees Done.
	limit := s.opts.MaxEnvelopeSize
	if n, err := strconv.Atoi(strings.TrimSpace(req.Header.MaxEnvelopeSize)); err == nil && n > 0 && n < limit {
		limit = n
	}
	budget := max((limit-receiveOverhead)/4*3, 1024)

	var b strings.Builder
	b.WriteString(`<rsp:ReceiveResponse>`)
	s.mu.Lock()
	out := cmd.stdout[cmd.sentOut:]
	out = out[:min(len(out), budget)]
	cmd.sentOut += len(out)
	errOut := cmd.stderr[cmd.sentErr:]
	errOut = errOut[:min(len(errOut), budget-len(out))]
	cmd.sentErr += len(errOut)
	finished := cmd.sentOut == len(cmd.stdout) && cmd.sentErr == len(cmd.stderr)
	exitCode := cmd.exitCode
	s.mu.Unlock()
	if len(out) > 0 {
		b.WriteString(`<rsp:Stream Name="stdout" CommandId="` + cmd.id + `">` + base64.StdEncoding.EncodeToString(out) + `</rsp:Stream>`)
	}
	if len(errOut) > 0 {
		b.WriteString(`<rsp:Stream Name="stderr" CommandId="` + cmd.id + `">` + base64.StdEncoding.EncodeToString(errOut) + `</rsp:Stream>`)
	}
	if finished {
		b.WriteString(`<rsp:Stream Name="stdout" CommandId="` + cmd.id + `" End="true"></rsp:Stream>`)
		b.WriteString(`<rsp:Stream Name="stderr" CommandId="` + cmd.id + `" End="true"></rsp:Stream>`)
		b.WriteString(`<rsp:CommandState CommandId="` + cmd.id + `" State="` + stateDone + `"><rsp:ExitCode>` +
			strconv.Itoa(exitCode) + `</rsp:ExitCode></rsp:CommandState>`)
	} else {
		b.WriteString(`<rsp:CommandState CommandId="` + cmd.id + `" State="` + stateRunning + `"></rsp:CommandState>`)
	}
	b.WriteString(`</rsp:ReceiveResponse>`)
	writeEnvelope(w, http.StatusOK, actionReceive+"Response", relates, b.String())
	return nil
}

func (s *Server) signal(w http.ResponseWriter, req *request, relates string) *fault {
	sh, f := s.acquire(req.selector("ShellId"))
	if f != nil {
		return f
	}
	defer s.release(sh)
	if req.Body.Signal == nil {
		f := faultInvalidParameter()
		return &f
	}
	cmd, f := s.lookupCommand(sh, req.Body.Signal.CommandID)
	if f != nil {
		return f
	}
	switch strings.TrimSpace(req.Body.Signal.Code) {
	case signalTerminate, signalCtrlC:
		// Terminating a finished process is a no-op; either way it is gone.
		cmd.cancel()
		s.mu.Lock()
		delete(sh.commands, cmd.id)
		s.mu.Unlock()
	default:
		f := faultInvalidParameter()
		return &f
	}
	writeEnvelope(w, http.StatusOK, actionSignal+"Response", relates, `<rsp:SignalResponse/>`)
	return nil
}

func (s *Server) delete(w http.ResponseWriter, req *request, relates string) *fault {
	id := req.selector("ShellId")
	s.mu.Lock()
	sh, ok := s.shells[id]
	if ok {
		delete(s.shells, id)
	}
	s.mu.Unlock()
	if !ok {
		f := faultShellNotFound(id)
		return &f
	}
	sh.cancel()
	writeEnvelope(w, http.StatusOK, "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", relates, "")
	return nil
}
