package winrm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Bootstrap is the only PowerShell text that ever appears on a command line.
//
// It reads the whole of stdin, which cmd.exe redirects from the invocation file
// (see Commands): base64, in lines, of the envelope
// {"script":"<base64 UTF-8 template>","data":"<base64 UTF-8 JSON>"}, and runs the
// template as a script block with the decoded data as its -Data parameter.
// [Convert]::FromBase64String skips the line breaks echo wrote. Stdin is a file,
// so ReadToEnd ends at its end whatever WinRS does with its own stdin stream.
// The template's output objects are written to stdout with [Console]::Out, not
// through PowerShell's formatter, so a JSON string comes out byte for byte,
// unwrapped. A terminating error (ErrorActionPreference is Stop, which the
// template inherits) writes the error message and its position to stderr and
// exits 1. Progress and warning records are silenced because powershell.exe would
// print them into the answer (progress as CLIXML, warnings on stdout).
//
// Because the template and the data travel as base64 in a file, nothing from
// outside is ever parsed as PowerShell (or by cmd.exe) except constant text.
const Bootstrap = `$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
try {
    $utf8 = New-Object System.Text.UTF8Encoding $false
    $envelope = $utf8.GetString([Convert]::FromBase64String([Console]::In.ReadToEnd())) | ConvertFrom-Json
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

// CommandLine returns the constant program of every call:
// powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand
// followed by base64(UTF-16LE(Bootstrap)). It is about 1,900 characters, far under
// cmd.exe's 8,191 limit, and does not depend on the template or the data. Run
// starts it with its stdin redirected from the invocation file (see Commands).
func CommandLine() string { return commandLine }

// MaxCommandLine is cmd.exe's limit on a command line after %VARIABLE%
// expansion (https://learn.microsoft.com/en-us/troubleshoot/windows-client/shell-experience/command-line-string-limitation).
// WinRS runs every command through cmd.exe /c (masterzen/winrm sends
// WINRS_SKIP_CMD_SHELL=FALSE), so every command of a call stays under it.
const MaxCommandLine = 8191

// ChunkChars is how many base64 characters one echo command appends to the
// invocation file. It is a multiple of 4 (so no chunk can be echo's ON or OFF
// keyword) and leaves about 1,000 characters for the expansion of %TEMP%.
const ChunkChars = 7168

// InvocationFile returns the path, as cmd.exe reads it, of the file that holds
// the invocation of call id (32 lowercase hex digits): %TEMP% of the WinRM user.
func InvocationFile(id string) string { return `%TEMP%\autopatch-` + id + ".b64" }

// Commands returns the commands of one call, run in order in one shell: the
// echo commands that write base64(envelope) to InvocationFile(id) in chunks of
// ChunkChars, the bootstrap with its stdin redirected from that file, and the
// del that removes it. Why not WinRS stdin: masterzen/winrm sends stdin in
// console mode (WINRS_CONSOLEMODE_STDIN=TRUE) and Windows is not documented to
// deliver end-of-input to a console-mode reader, so [Console]::In.ReadToEnd()
// could wait until the call times out (see wsmansim for the evidence). A file
// has an end. Each command line is constant text, the call's random id and
// base64 characters, so cmd.exe sees no quotes, %, ^, &, | or < from outside.
func Commands(id string, envelope []byte) (writes []string, run, cleanup string) {
	file := InvocationFile(id)
	payload := base64.StdEncoding.EncodeToString(envelope)
	for off := 0; off < len(payload); off += ChunkChars {
		redirect := ">>"
		if off == 0 {
			redirect = ">" // a stale file of the same name (none is expected) is replaced
		}
		// The redirection comes first: "echo x2>>f" would read 2> as stderr.
		writes = append(writes, redirect+`"`+file+`" echo `+payload[off:min(off+ChunkChars, len(payload))])
	}
	return writes, commandLine + ` <"` + file + `"`, `del /q "` + file + `"`
}

func encodeUTF16LEBase64(s string) string {
	units := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(units))
	for _, u := range units {
		b = append(b, byte(u), byte(u>>8))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// envelope is what the invocation file holds (base64 of its JSON). Both fields
// are base64 too, so that the template and the data are opaque to every layer
// until the bootstrap decodes them.
type envelope struct {
	Script string `json:"script"`
	Data   string `json:"data"`
}

// encodeEnvelope builds the envelope of one call.
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
// the bootstrap but stdin is not base64 of a well-formed envelope: the bootstrap
// would fail before running any template.
var ErrBadEnvelope = errors.New("winrm: malformed invocation envelope")

// DecodeInvocation is the remote side of Run, for simulators: it checks that
// commandLine is byte for byte CommandLine() (the program, without the stdin
// redirection cmd.exe removes) and decodes stdin, the invocation file, the way
// Bootstrap does, returning the template text and the data JSON. Errors wrap
// ErrNotBootstrap or ErrBadEnvelope.
func DecodeInvocation(commandLine string, stdin []byte) (script string, data []byte, err error) {
	if commandLine != CommandLine() {
		return "", nil, ErrNotBootstrap
	}
	// Like [Convert]::FromBase64String, skip white space (echo's CR LF).
	raw, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, string(stdin)))
	if err != nil {
		return "", nil, fmt.Errorf("%w: stdin is not base64: %w", ErrBadEnvelope, err)
	}
	stdin = raw
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
