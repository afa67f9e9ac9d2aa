package wsmansim_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

var hostTemplates = []winrm.Template{
	{Name: "Echo", Script: "param($Data)\n$Data | ConvertTo-Json\n"},
	{Name: "Fail", Script: "param($Data)\nthrow 'no'\n"},
	{Name: "Cast", Script: "param($Data)\n[int]$Data.n\n"},
	{Name: "Unencodable", Script: "param($Data)\n[System.Threading.Thread]::CurrentThread\n"},
}

// newTestHost returns a host whose dispatch answers each template in its own
// way and records what it was given, so the tests see what reached it.
func newTestHost(logger *slog.Logger) (*wsmansim.TemplateHost, func() []string) {
	var mu sync.Mutex
	var seen []string
	h := wsmansim.NewTemplateHost("testsim", hostTemplates, func(name string, data []byte) (any, *wsmansim.PSError) {
		mu.Lock()
		seen = append(seen, name+" "+string(data))
		mu.Unlock()
		switch name {
		case "Echo":
			var v map[string]any
			if err := json.Unmarshal(data, &v); err != nil {
				return nil, wsmansim.CmdletError("ConvertFrom-Json", err.Error())
			}
			return v, nil
		case "Fail":
			return nil, wsmansim.Throw("no")
		case "Cast":
			return wsmansim.DecodeAnd(data, "[int]$Data.n", func(req struct {
				N int `json:"n"`
			}) (any, *wsmansim.PSError) {
				return map[string]int{"doubled": 2 * req.N}, nil
			})
		case "Unencodable":
			return make(chan int), nil
		}
		return nil, wsmansim.Throw("unexpected template " + name)
	}, logger)
	return h, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestTemplateHostRun(t *testing.T) {
	t.Parallel()
	// The position lines PowerShell prints, written out here rather than taken
	// from the package, so a change to the text the simulators share fails.
	const throwPos = "At line:1 char:1\n+ throw ($message)\n+ ~~~~~~~~~~~~~~~~"
	tests := []struct {
		name       string
		script     string
		data       string
		wantStdout string
		wantStderr string
		wantExit   int
		wantSeen   []string
	}{
		{
			name: "TemplateAnswersJSON", script: hostTemplates[0].Script, data: `{"a":[1,"x"]}`,
			wantStdout: `{"a":[1,"x"]}`, wantSeen: []string{`Echo {"a":[1,"x"]}`},
		},
		{
			name: "ThrowIsExitOne", script: hostTemplates[1].Script, data: `{}`,
			wantStderr: "no\n" + throwPos, wantExit: 1, wantSeen: []string{"Fail {}"},
		},
		{
			name: "DecodedData", script: hostTemplates[2].Script, data: `{"n":21}`,
			wantStdout: `{"doubled":42}`, wantSeen: []string{`Cast {"n":21}`},
		},
		{
			name: "WrongTypeIsTheCastsError", script: hostTemplates[2].Script, data: `{"n":"x"}`,
			wantStderr: "Cannot convert value: json: cannot unmarshal string into Go struct field .n of type int\n" +
				"At line:1 char:1\n+ [int]$Data.n\n+ ~~~~~~~~~~~~~~~~",
			wantExit: 1, wantSeen: []string{`Cast {"n":"x"}`},
		},
		{
			name: "UnencodableAnswerIsConvertToJSONError", script: hostTemplates[3].Script, data: `{}`,
			wantStderr: "json: unsupported type: chan int\nAt line:1 char:1\n+ ConvertTo-Json\n+ ~~~~~~~~~~~~~~~~",
			wantExit:   1, wantSeen: []string{"Unencodable {}"},
		},
		{
			name: "OtherScriptRefused", script: "param($Data)\nRemove-Item C:\\ -Recurse\n", data: `{}`,
			wantStderr: "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode: " +
				"this endpoint runs only autopatch's approved script templates.\nAt line:1 char:1\n+ <script>\n+ ~~~~~~~~",
			wantExit: 1,
		},
		{
			// Only the exact text is a template: one extra byte is refused.
			name: "AlmostATemplateRefused", script: hostTemplates[0].Script + " ", data: `{}`,
			wantStderr: wsmansim.NotATemplateError(), wantExit: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, seen := newTestHost(nil)
			stdout, stderr, exit := h.Run(t.Context(), tt.script, []byte(tt.data))
			require.Equal(t, tt.wantExit, exit)
			require.Equal(t, tt.wantStderr, stderr)
			if tt.wantStdout == "" {
				require.Empty(t, stdout)
			} else {
				require.JSONEq(t, tt.wantStdout, string(stdout))
			}
			require.Equal(t, tt.wantSeen, seen(), "what reached dispatch")
			require.Equal(t, 1, h.Calls(), "every script is one call, refused or not")
		})
	}
}

func TestTemplateHostCounts(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h, _ := newTestHost(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.Zero(t, h.Calls())
	require.Empty(t, h.CallsByTemplate())

	// Concurrent runs: the counts must add up (run with -race to check the locking).
	const perTemplate = 20
	want := map[string]int{}
	var wg sync.WaitGroup
	for _, script := range []string{hostTemplates[0].Script, hostTemplates[1].Script, "param($Data)\nGet-Process\n"} {
		name := wsmansim.Refused
		for _, tmpl := range hostTemplates {
			if tmpl.Script == script {
				name = tmpl.Name
			}
		}
		want[name] += perTemplate
		for range perTemplate {
			wg.Go(func() { h.Run(t.Context(), script, []byte(`{}`)) })
		}
	}
	wg.Wait()
	require.Equal(t, 3*perTemplate, h.Calls())
	require.Equal(t, want, h.CallsByTemplate())

	// CallsByTemplate is a copy: changing it changes nothing in the host.
	got := h.CallsByTemplate()
	got["Echo"] = 1000
	require.Equal(t, want, h.CallsByTemplate())

	// One debug line per call, prefixed with the simulator's name.
	text := logs.String()
	require.Equal(t, perTemplate, strings.Count(text, `msg="testsim call" template=Echo`))
	require.Equal(t, perTemplate, strings.Count(text, `msg="testsim call failed" template=Fail error=no`))
	require.Equal(t, perTemplate, strings.Count(text, `msg="testsim refused a script"`))
}

func TestTemplateHostHandles(t *testing.T) {
	t.Parallel()
	h, _ := newTestHost(nil)
	for _, tmpl := range hostTemplates {
		require.True(t, h.Handles(tmpl.Script), tmpl.Name)
		require.False(t, h.Handles(strings.TrimSuffix(tmpl.Script, "\n")), tmpl.Name)
	}
	require.False(t, h.Handles(""))
	require.Zero(t, h.Calls(), "Handles is not a call")
}

func TestPSErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *wsmansim.PSError
		want string
	}{
		{"Throw", wsmansim.Throw("No collection 'x'."),
			"No collection 'x'.\nAt line:1 char:1\n+ throw ($message)\n+ ~~~~~~~~~~~~~~~~"},
		{"Cmdlet", wsmansim.CmdletError("Get-CMDevice -Name $n", "Access denied."),
			"Access denied.\nAt line:1 char:1\n+ Get-CMDevice -Name $n\n+ ~~~~~~~~~~~~~~~~"},
		{"Literal", &wsmansim.PSError{Message: "m", Position: "p"}, "m\np"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.err.String())
		})
	}
}
