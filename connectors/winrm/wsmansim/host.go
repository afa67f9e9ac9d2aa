package wsmansim

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"sync"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/pscheck"
)

// Refused is the CallsByTemplate key under which a TemplateHost counts the
// scripts it refused because they are not one of its templates.
const Refused = "(refused)"

// PSError is a terminating PowerShell error as autopatch's bootstrap prints
// it on stderr: the exception message, then PowerShell's position message.
// The simulators build their refusals from it so that the text matches what
// a real host writes, byte for byte.
type PSError struct {
	// Message is the exception message, the first line(s) of the text.
	Message string
	// Position is "At line:… char:…" and the offending line, underlined.
	Position string
}

// Throw is the error of a template's own throw statement.
func Throw(msg string) *PSError {
	return &PSError{Message: msg, Position: "At line:1 char:1\n+ throw ($message)\n+ ~~~~~~~~~~~~~~~~"}
}

// CmdletError is the error of a cmdlet (or a cast) the templates call;
// cmdlet is the offending line as PowerShell quotes it.
func CmdletError(cmdlet, msg string) *PSError {
	return &PSError{Message: msg, Position: "At line:1 char:1\n+ " + cmdlet + "\n+ ~~~~~~~~~~~~~~~~"}
}

// ProblemError is the error PowerShell prints for a command that the
// signature table refuses (an unknown cmdlet or parameter, parameters that
// fit no parameter set, a value outside the documented set), with its
// position in the script and its error record's category and id.
func ProblemError(p pscheck.Problem) *PSError {
	return &PSError{Message: p.Message, Position: p.Position() +
		"\n    + CategoryInfo          : " + p.Category +
		"\n    + FullyQualifiedErrorId : " + p.ErrorID}
}

// String is the stderr text of the error.
func (e *PSError) String() string { return e.Message + "\n" + e.Position }

// NotATemplateError is the error text for a script that is not one of the
// templates: what a constrained (JEA) endpoint that allows only approved
// scripts answers. Hosts that dispatch between simulators use it too.
func NotATemplateError() string {
	return "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode: " +
		"this endpoint runs only autopatch's approved script templates.\nAt line:1 char:1\n+ <script>\n+ ~~~~~~~~"
}

// DecodeAnd unmarshals a template's data into Req and calls f with it. A
// value of the wrong type is what the script's cast refuses, so the error is
// CmdletError(cast, …); cast is the cast expression the template uses, as in
// "[int]$value".
func DecodeAnd[Req any](data []byte, cast string, f func(Req) (any, *PSError)) (any, *PSError) {
	var req Req
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, CmdletError(cast, "Cannot convert value: "+err.Error())
	}
	return f(req)
}

// DispatchFunc runs the template called name with its data JSON and returns
// the answer that the template would write (it is JSON-marshalled), or the
// PowerShell error it would fail with. It must do its own locking: a
// TemplateHost calls it concurrently, once per Run.
type DispatchFunc func(name string, data []byte) (any, *PSError)

// TemplateHost is the part every simulated WinRM host shares: it accepts
// exactly the text of its templates, counts the calls, refuses anything else
// as a constrained endpoint does, and turns the dispatch's answer into
// powershell.exe's stdout, stderr and exit code. Run has the signature of a
// RunFunc. It is safe for concurrent use.
type TemplateHost struct {
	name     string
	logger   *slog.Logger
	scripts  map[string]string // template text -> template name
	dispatch DispatchFunc

	signatures Checker

	mu      sync.Mutex
	calls   map[string]int
	total   int
	checked map[string][]pscheck.Problem // template text -> its problems, computed once
}

// Checker is what a signature table (*pscheck.Table) offers the host: the
// problems PowerShell would refuse a script with.
type Checker interface {
	Check(script string) []pscheck.Problem
}

// CheckSignatures makes the host check every script against table before it
// runs, templates included, and answer a refused one as PowerShell would: its
// error text on stderr and exit code 1. The host then behaves like a
// constrained endpoint whose visible commands are the table's documented
// cmdlets, so a call the vendor does not document fails here as it would on
// a real host. Call it before the first Run.
func (h *TemplateHost) CheckSignatures(table Checker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.signatures = table
	h.checked = map[string][]pscheck.Problem{}
}

// problems checks script against the signature table, if there is one. A
// template's result is remembered: its text never changes.
func (h *TemplateHost) problems(script string, template bool) []pscheck.Problem {
	h.mu.Lock()
	table := h.signatures
	probs, done := h.checked[script]
	h.mu.Unlock()
	if table == nil || done {
		return probs
	}
	probs = table.Check(script)
	if template {
		h.mu.Lock()
		h.checked[script] = probs
		h.mu.Unlock()
	}
	return probs
}

// NewTemplateHost returns a host that answers the scripts of templates
// through dispatch. name prefixes its log messages ("sccmsim"); logger
// receives one debug line per call, nil discards.
func NewTemplateHost(name string, templates []winrm.Template, dispatch DispatchFunc, logger *slog.Logger) *TemplateHost {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &TemplateHost{
		name:     name,
		logger:   logger,
		scripts:  make(map[string]string, len(templates)),
		dispatch: dispatch,
		calls:    map[string]int{},
	}
	for _, t := range templates {
		h.scripts[t.Script] = t.Name
	}
	return h
}

// Calls returns how many scripts the host has been asked to run, refused ones
// included: each is one WinRM command.
func (h *TemplateHost) Calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// CallsByTemplate returns the number of runs per template name; refused
// scripts count under Refused.
func (h *TemplateHost) CallsByTemplate() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.calls)
}

// Handles reports whether script is one of the host's templates, byte for
// byte. A server that fronts several simulators dispatches on it.
func (h *TemplateHost) Handles(script string) bool {
	_, ok := h.scripts[script]
	return ok
}

// Run executes one script with its decoded data, as powershell.exe would:
// the JSON answer on stdout and exit 0, or error text on stderr and exit 1.
// The call is counted before it runs, so a script that fails still counts.
func (h *TemplateHost) Run(ctx context.Context, script string, data []byte) (stdout []byte, stderr string, exit int) {
	name, ok := h.scripts[script]
	if !ok {
		name = Refused
	}
	h.mu.Lock()
	h.total++
	h.calls[name]++
	h.mu.Unlock()

	// PowerShell refuses a call it cannot bind before the script gets that
	// far; the simulator refuses the whole script up front, which leaves the
	// site unchanged just as the templates' validate-first order does.
	if probs := h.problems(script, ok); len(probs) > 0 {
		h.logger.DebugContext(ctx, h.name+" refused a script the signature table refuses",
			"template", name, "line", probs[0].Line, "error", probs[0].Message)
		return nil, ProblemError(probs[0]).String(), 1
	}
	if !ok {
		h.logger.DebugContext(ctx, h.name+" refused a script", "bytes", len(script))
		return nil, NotATemplateError(), 1
	}
	answer, perr := h.dispatch(name, data)
	if perr != nil {
		h.logger.DebugContext(ctx, h.name+" call failed", "template", name, "error", perr.Message)
		return nil, perr.String(), 1
	}
	out, err := json.Marshal(answer)
	if err != nil { // only an answer type that JSON cannot encode gets here
		return nil, CmdletError("ConvertTo-Json", err.Error()).String(), 1
	}
	h.logger.DebugContext(ctx, h.name+" call", "template", name)
	return out, "", 0
}
