package winrm_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/winrm"
)

func TestCommandLineEncodesBootstrap(t *testing.T) {
	t.Parallel()

	const prefix = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand "
	line := winrm.CommandLine()
	require.True(t, strings.HasPrefix(line, prefix), line)
	require.Less(t, len(line), 8191)

	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, prefix))
	require.NoError(t, err)
	require.Zero(t, len(raw)%2)
	units := make([]uint16, len(raw)/2)
	for i := range units {
		units[i] = uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
	}
	require.Equal(t, winrm.Bootstrap, string(utf16.Decode(units)))

	// The bootstrap is the fixed part of the design: it must read stdin and
	// never take anything from the command line.
	require.Contains(t, winrm.Bootstrap, "[Console]::In.ReadToEnd()")
	require.Contains(t, winrm.Bootstrap, "[ScriptBlock]::Create(")
	require.Contains(t, winrm.Bootstrap, "-Data")
	require.Contains(t, winrm.Bootstrap, "$ErrorActionPreference = 'Stop'")
	require.Contains(t, winrm.Bootstrap, "exit 1")
	require.NotContains(t, winrm.Bootstrap, "$args")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func envelopeJSON(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(fields)
	require.NoError(t, err)
	return b
}

func TestDecodeInvocation(t *testing.T) {
	t.Parallel()

	const script = "param($Data)\n$Data | ConvertTo-Json -Compress\n"
	const data = `{"name":"O'Brien \"$(x)\"","n":[1,2]}`
	good := envelopeJSON(t, map[string]any{"script": b64(script), "data": b64(data)})

	// The invocation file: base64 of the envelope in lines, as echo writes it.
	file := b64(string(good))
	file = file[:8] + "\r\n" + file[8:] + "\r\n"
	gotScript, gotData, err := winrm.DecodeInvocation(winrm.CommandLine(), []byte(file))
	require.NoError(t, err)
	require.Equal(t, script, gotScript)
	require.Equal(t, data, string(gotData))

	tests := []struct {
		name  string
		line  string
		stdin []byte
		want  error
	}{
		{"TrailingSpace", winrm.CommandLine() + " ", good, winrm.ErrNotBootstrap},
		{"OtherCase", strings.Replace(winrm.CommandLine(), "powershell.exe", "PowerShell.exe", 1), good, winrm.ErrNotBootstrap},
		{"OtherScript", "powershell.exe -EncodedCommand " + b64("Get-Date"), good, winrm.ErrNotBootstrap},
		{"Empty", "", good, winrm.ErrNotBootstrap},
		{"NotBase64", winrm.CommandLine(), []byte("Remove-Item C:\\"), winrm.ErrBadEnvelope},
		{"NotJSON", winrm.CommandLine(), []byte("Remove-Item C:\\"), winrm.ErrBadEnvelope},
		{"EmptyStdin", winrm.CommandLine(), nil, winrm.ErrBadEnvelope},
		{"TwoDocuments", winrm.CommandLine(), append(append([]byte{}, good...), good...), winrm.ErrBadEnvelope},
		{"NoScript", winrm.CommandLine(), envelopeJSON(t, map[string]any{"data": b64(data)}), winrm.ErrBadEnvelope},
		{"NoData", winrm.CommandLine(), envelopeJSON(t, map[string]any{"script": b64(script)}), winrm.ErrBadEnvelope},
		{"ScriptNotBase64", winrm.CommandLine(), envelopeJSON(t, map[string]any{"script": "Get-Date;", "data": b64(data)}), winrm.ErrBadEnvelope},
		{"ScriptNotUTF8", winrm.CommandLine(), envelopeJSON(t, map[string]any{"script": base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}), "data": b64(data)}), winrm.ErrBadEnvelope},
		{"DataNotBase64", winrm.CommandLine(), envelopeJSON(t, map[string]any{"script": b64(script), "data": "{}"}), winrm.ErrBadEnvelope},
		{"DataNotJSON", winrm.CommandLine(), envelopeJSON(t, map[string]any{"script": b64(script), "data": b64("$(evil)")}), winrm.ErrBadEnvelope},
		{"ScriptNotString", winrm.CommandLine(), envelopeJSON(t, map[string]any{"script": 1, "data": b64(data)}), winrm.ErrBadEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdin := []byte(b64(string(tt.stdin))) // as the invocation file holds it
			if tt.name == "NotBase64" {
				stdin = tt.stdin
			}
			s, d, err := winrm.DecodeInvocation(tt.line, stdin)
			require.ErrorIs(t, err, tt.want)
			require.Empty(t, s)
			require.Nil(t, d)
		})
	}
}
