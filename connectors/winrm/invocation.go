package winrm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Bootstrap is the only PowerShell text that ever appears on a command line.
//
// It reads the whole of stdin, which holds the invocation envelope
// {"script":"<base64 UTF-8 template>","data":"<base64 UTF-8 JSON>"}, and runs the
// template as a script block with the decoded data as its -Data parameter. The
// template's output objects are written to stdout with [Console]::Out, not through
// PowerShell's formatter, so a JSON string comes out byte for byte, unwrapped. A
// terminating error (ErrorActionPreference is Stop, which the template inherits)
// writes the error message and its position to stderr and exits 1. Progress and
// warning records are silenced because powershell.exe would print them into the
// answer (progress as CLIXML, warnings on stdout).
//
// Because both the template and the data travel over stdin, nothing from outside is
// ever parsed as PowerShell except constant template text, and the command line has
// the same length whatever the data size.
const Bootstrap = `$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
try {
    $envelope = [Console]::In.ReadToEnd() | ConvertFrom-Json
    $utf8 = New-Object System.Text.UTF8Encoding $false
    $text = $utf8.GetString([Convert]::FromBase64String($envelope.script))
    $dataJson = $utf8.GetString([Convert]::FromBase64String($envelope.data))
    $out = & ([ScriptBlock]::Create($text)) -Data ($dataJson | ConvertFrom-Json)
    foreach ($o in @($out)) { [Console]::Out.WriteLine([string]$o) }
} catch {
    [Console]::Error.WriteLine(($_.Exception.Message, $_.InvocationInfo.PositionMessage) -join [Environment]::NewLine)
    exit 1
}
exit 0
`

// commandLine is computed once: it never changes.
var commandLine = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand " +
	encodeUTF16LEBase64(Bootstrap)

// CommandLine returns the constant command line of every call:
// powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand
// followed by base64(UTF-16LE(Bootstrap)). It is about 1,800 characters, far under
// cmd.exe's 8,191 limit, and does not depend on the template or the data.
func CommandLine() string { return commandLine }

func encodeUTF16LEBase64(s string) string {
	units := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(units))
	for _, u := range units {
		b = append(b, byte(u), byte(u>>8))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// envelope is what travels over stdin. Both fields are base64 so that the stdin
// stream is plain ASCII whatever the console code page of the remote host.
type envelope struct {
	Script string `json:"script"`
	Data   string `json:"data"`
}

// encodeEnvelope builds the stdin of one call.
func encodeEnvelope(script string, dataJSON []byte) ([]byte, error) {
	b, err := json.Marshal(envelope{
		Script: base64.StdEncoding.EncodeToString([]byte(script)),
		Data:   base64.StdEncoding.EncodeToString(dataJSON),
	})
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return b, nil
}

// ErrNotBootstrap is returned (wrapped) by DecodeInvocation when the command line is
// not exactly CommandLine().
var ErrNotBootstrap = errors.New("winrm: command line is not the autopatch bootstrap")

// ErrBadEnvelope is returned (wrapped) by DecodeInvocation when the command line is
// the bootstrap but stdin is not a well-formed envelope: the bootstrap would fail
// before running any template.
var ErrBadEnvelope = errors.New("winrm: malformed invocation envelope")

// DecodeInvocation is the remote side of Run, for simulators: it checks that
// commandLine is byte for byte CommandLine() and decodes stdin the way Bootstrap
// does, returning the template text and the data JSON. Errors wrap ErrNotBootstrap
// or ErrBadEnvelope.
func DecodeInvocation(commandLine string, stdin []byte) (script string, data []byte, err error) {
	if commandLine != CommandLine() {
		return "", nil, ErrNotBootstrap
	}
	var env struct {
		Script *string `json:"script"`
		Data   *string `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(stdin))
	if err := dec.Decode(&env); err != nil {
		return "", nil, fmt.Errorf("%w: stdin is not JSON: %w", ErrBadEnvelope, err)
	}
	if dec.More() {
		return "", nil, fmt.Errorf("%w: stdin holds more than one JSON document", ErrBadEnvelope)
	}
	if env.Script == nil || env.Data == nil {
		return "", nil, fmt.Errorf("%w: script or data missing", ErrBadEnvelope)
	}
	s, err := base64.StdEncoding.DecodeString(*env.Script)
	if err != nil {
		return "", nil, fmt.Errorf("%w: script is not base64: %w", ErrBadEnvelope, err)
	}
	if !utf8.Valid(s) {
		return "", nil, fmt.Errorf("%w: script is not UTF-8", ErrBadEnvelope)
	}
	d, err := base64.StdEncoding.DecodeString(*env.Data)
	if err != nil {
		return "", nil, fmt.Errorf("%w: data is not base64: %w", ErrBadEnvelope, err)
	}
	if !json.Valid(d) {
		return "", nil, fmt.Errorf("%w: data is not JSON", ErrBadEnvelope)
	}
	return string(s), d, nil
}
