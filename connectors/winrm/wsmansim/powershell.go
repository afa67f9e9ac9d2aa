package wsmansim

import (
	"context"
	"encoding/base64"
	"errors"
	"path"
	"strings"
	"unicode/utf16"

	"github.com/autopatch/autopatch/connectors/winrm"
)

// RunFunc plays one autopatch template: script is the decoded template text
// (compare it with the known templates and refuse anything else), data the data
// JSON. It returns stdout, PowerShell's error text and the exit code.
type RunFunc func(ctx context.Context, script string, data []byte) (stdout []byte, stderr string, exit int)

// PowerShell adapts run to an ExecFunc that behaves like powershell.exe running
// autopatch's bootstrap (winrm.Bootstrap). Anything else is answered as a
// Windows host would answer it, with exit code 1: a command line that is not the
// bootstrap gets cmd.exe's or PowerShell's "is not recognized" error, a malformed
// stdin envelope the bootstrap's error, and a template without param($Data)
// PowerShell's parameter binding error. run only sees well-formed invocations.
func PowerShell(run RunFunc) ExecFunc {
	return func(ctx context.Context, commandLine string, stdin []byte) ([]byte, []byte, int) {
		script, data, err := winrm.DecodeInvocation(commandLine, stdin)
		switch {
		case errors.Is(err, winrm.ErrNotBootstrap):
			return nil, []byte(notBootstrap(commandLine)), 1
		case err != nil:
			return nil, []byte(psError(strings.TrimPrefix(err.Error(), "winrm: "),
				"InvalidData: (:) [], ArgumentException", "InvalidInvocationEnvelope")), 1
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(script, "\ufeff"), "\n")
		if !strings.EqualFold(strings.TrimSpace(first), "param($Data)") {
			return nil, []byte(psError("A parameter cannot be found that matches parameter name 'Data'.",
				"InvalidArgument: (:) [], ParameterBindingException", "NamedParameterNotFound")), 1
		}
		stdout, stderr, code := run(ctx, script, data)
		return stdout, []byte(stderr), code
	}
}

// psError formats an error record the way powershell.exe prints it on stderr.
func psError(message, category, id string) string {
	return message + "\r\n" +
		"    + CategoryInfo          : " + category + "\r\n" +
		"    + FullyQualifiedErrorId : " + id + "\r\n"
}

// notBootstrap answers a command line that is not the bootstrap.
func notBootstrap(commandLine string) string {
	fields := strings.Fields(commandLine)
	if len(fields) == 0 {
		return "The syntax of the command is incorrect.\r\n"
	}
	prog := strings.ToLower(strings.Trim(fields[0], `"`))
	prog = strings.TrimSuffix(path.Base(strings.ReplaceAll(prog, `\`, "/")), ".exe")
	if prog != "powershell" && prog != "pwsh" {
		return cmdNotRecognized(commandLine)
	}
	// powershell.exe with some other script: name its first word as unknown.
	script := ""
	for i := 1; i < len(fields); i++ {
		flag := strings.ToLower(fields[i])
		switch {
		case (flag == "-encodedcommand" || flag == "-enc" || flag == "-e" || flag == "-ec") && i+1 < len(fields):
			decoded, ok := decodeUTF16Base64(fields[i+1])
			if !ok {
				return "Cannot process the command because the value specified with -EncodedCommand is not " +
					"properly encoded. The value must be Base64 encoded.\r\n"
			}
			script = decoded
		case flag == "-command" || flag == "-c":
			script = strings.Join(fields[i+1:], " ")
		default:
			continue
		}
		break
	}
	token := firstToken(script)
	if token == "" {
		token = "-"
	}
	return psError(token+" : The term '"+token+"' is not recognized as the name of a cmdlet, function, script "+
		"file, or operable program. Check the spelling of the name, or if a path was included, verify that the "+
		"path is correct and try again.",
		"ObjectNotFound: ("+token+":String) [], CommandNotFoundException", "CommandNotFoundException")
}

// cmdNotRecognized is cmd.exe's answer to an unknown program.
func cmdNotRecognized(commandLine string) string {
	fields := strings.Fields(commandLine)
	prog := ""
	if len(fields) > 0 {
		prog = strings.Trim(fields[0], `"`)
	}
	return "'" + prog + "' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
}

func firstToken(script string) string {
	f := strings.FieldsFunc(script, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == ';' || r == '|'
	})
	if len(f) == 0 {
		return ""
	}
	t := f[0]
	if len(t) > 64 {
		t = t[:64]
	}
	return t
}

func decodeUTF16Base64(s string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%2 != 0 {
		return "", false
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u)), true
}
