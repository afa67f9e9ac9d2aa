package scom

import (
	_ "embed"
	"sync"

	"github.com/autopatch/autopatch/connectors/winrm/pscheck"
)

// cmdletsYAML is the documented signature of every OperationsManager cmdlet
// the templates call, each row citing its page (see the file's header).
//
//go:embed cmdlets.yaml
var cmdletsYAML []byte

// Signatures returns the signature table the templates are checked against:
// the OperationsManager cmdlets of cmdlets.yaml plus the PowerShell 5.1
// built-ins. The tests hold every template to it and scomsim refuses any
// script it refuses, as PowerShell on a real management server would.
func Signatures() *pscheck.Table { return signatures() }

// signatures loads the embedded table once; the tests keep it valid, so a
// failure here is a broken build, not a run-time condition.
var signatures = sync.OnceValue(func() *pscheck.Table { return pscheck.MustLoad(cmdletsYAML) })
