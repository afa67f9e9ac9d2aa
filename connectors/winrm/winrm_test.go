package winrm_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

const (
	testUser     = "autopatch-svc"
	testPassword = "S3cr3t-p4ss'\"word"
)

// The templates the test host knows. Their text is what a real host would run;
// the test host plays them by name.
var (
	echoTemplate = winrm.Template{Name: "echo", Script: "param($Data)\n$Data | ConvertTo-Json -Depth 10 -Compress\n"}
	// exitTemplate exits with $Data.exit after writing $Data.stderr.
	exitTemplate = winrm.Template{Name: "exit", Script: "param($Data)\n[Console]::Error.Write($Data.stderr)\nexit $Data.exit\n"}
	// rawTemplate writes $Data.stdout as is.
	rawTemplate = winrm.Template{Name: "raw", Script: "param($Data)\n[Console]::Out.Write($Data.stdout)\n"}
	// blockTemplate never answers.
	blockTemplate = winrm.Template{Name: "block", Script: "param($Data)\nwhile ($true) { Start-Sleep -Seconds 1 }\n"}
)

// testHost plays the templates above and records every command line it saw.
type testHost struct {
	mu      sync.Mutex
	lines   []string
	aliases map[string]string // script → the known template it behaves as
	started chan struct{}     // receives when blockTemplate starts
	release chan struct{}     // closing it ends blockTemplate
}

func newTestHost() *testHost {
	return &testHost{started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (h *testHost) exec() wsmansim.ExecFunc {
	ps := wsmansim.PowerShell(h.run)
	return func(ctx context.Context, line string, stdin []byte) ([]byte, []byte, int) {
		h.mu.Lock()
		h.lines = append(h.lines, line)
		h.mu.Unlock()
		return ps(ctx, line, stdin)
	}
}

// alias makes script behave as the known template like.
func (h *testHost) alias(script, like string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.aliases == nil {
		h.aliases = make(map[string]string)
	}
	h.aliases[script] = like
}

func (h *testHost) commandLines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.lines...)
}

func (h *testHost) run(ctx context.Context, script string, data []byte) ([]byte, string, int) {
	var d struct {
		Exit   int    `json:"exit"`
		Stderr string `json:"stderr"`
		Stdout string `json:"stdout"`
	}
	h.mu.Lock()
	if like, ok := h.aliases[script]; ok {
		script = like
	}
	h.mu.Unlock()
	switch script {
	case echoTemplate.Script:
		return data, "", 0
	case exitTemplate.Script, rawTemplate.Script:
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, err.Error(), 1
		}
		return []byte(d.Stdout), d.Stderr, d.Exit
	case blockTemplate.Script:
		h.started <- struct{}{}
		select {
		case <-ctx.Done():
			return nil, "terminated", 1
		case <-h.release:
			return []byte(`{}`), "", 0
		}
	}
	return nil, "not an autopatch template", 1
}

type testBundle struct {
	host   *testHost
	srv    *wsmansim.Server
	ts     *httptest.Server
	client *winrm.Client
	caFile string
}

type setupOpts struct {
	https   bool
	sim     wsmansim.Options
	cfg     func(*winrm.Config) // adjusts the client config
	noCACfg bool                // do not give the client the CA file
}

func setup(t testing.TB, o setupOpts) *testBundle {
	t.Helper()
	host := newTestHost()
	o.sim.User, o.sim.Password = testUser, testPassword
	if o.sim.Exec == nil {
		o.sim.Exec = host.exec()
	}
	srv := wsmansim.New(o.sim)
	mux := http.NewServeMux()
	mux.Handle("/wsman", srv)
	ts := httptest.NewUnstartedServer(mux)
	// TLS failures are expected in some tests; keep them out of the output.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	b := &testBundle{host: host, srv: srv, ts: ts}
	cfg := winrm.Config{
		Endpoint: "http://" + ts.Listener.Addr().String() + "/wsman",
		User:     testUser,
		Password: testPassword,
		Auth:     "basic",
		Timeout:  time.Minute,
	}
	if o.https {
		certPEM, keyPEM, caPEM, err := wsmansim.NewTLSCert()
		require.NoError(t, err)
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		require.NoError(t, err)
		ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		ts.StartTLS()
		b.caFile = filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(b.caFile, caPEM, 0o600))
		cfg.Endpoint = "https://" + ts.Listener.Addr().String() + "/wsman"
		if !o.noCACfg {
			cfg.CAFile = b.caFile
		}
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close)
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	client, err := winrm.New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	b.client = client
	return b
}

func TestRunRoundTrip(t *testing.T) {
	t.Parallel()

	for _, https := range []bool{false, true} {
		name := "HTTP"
		if https {
			name = "HTTPS"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{https: https})

			type item struct {
				Name  string            `json:"name"`
				N     int               `json:"n"`
				Tags  []string          `json:"tags"`
				Attrs map[string]string `json:"attrs"`
			}
			in := map[string]any{
				"change": "CHG0031234",
				"items":  []item{{Name: "SQL01", N: 1, Tags: []string{"a"}, Attrs: map[string]string{"k": "v"}}},
				"empty":  []string{},
				"flag":   true,
			}
			var out map[string]any
			require.NoError(t, b.client.Run(context.Background(), echoTemplate, in, &out))

			want, err := json.Marshal(in)
			require.NoError(t, err)
			got, err := json.Marshal(out)
			require.NoError(t, err)
			require.JSONEq(t, string(want), string(got))

			lines := b.host.commandLines()
			require.Equal(t, []string{winrm.CommandLine()}, lines)
		})
	}
}

func TestRunNilDataAndNilOut(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	var out map[string]any
	require.NoError(t, b.client.Run(context.Background(), echoTemplate, nil, &out))
	require.Equal(t, map[string]any{}, out)
	require.NoError(t, b.client.Run(context.Background(), echoTemplate, map[string]int{"a": 1}, nil))
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	tests := []struct {
		name string
		tmpl winrm.Template
		data any
		want string
	}{
		{"NoName", winrm.Template{Script: echoTemplate.Script}, nil, "no name"},
		{"NoParam", winrm.Template{Name: "x", Script: "Get-Date"}, nil, "param($Data)"},
		{"ArrayData", echoTemplate, []string{"a"}, "JSON object"},
		{"ScalarData", echoTemplate, "a", "JSON object"},
		{"Unmarshallable", echoTemplate, map[string]any{"c": make(chan int)}, "marshal data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := b.client.Run(context.Background(), tt.tmpl, tt.data, nil)
			require.ErrorContains(t, err, tt.want)
			require.True(t, strings.HasPrefix(err.Error(), "winrm: "+tt.tmpl.Name+": "), err.Error())
		})
	}
	require.Empty(t, b.host.commandLines(), "nothing may reach the host")
}

// hostileStrings must come out of the remote side exactly as they went in.
func hostileStrings() []string {
	return []string{
		`'`, `"`, `''`, `""`, "‘single’", "“double”", "„low“", "`backtick`", "``",
		"$(Remove-Item C:\\ -Recurse)", "${env:PATH}", "$env:USERNAME", "@(1,2)", "@{a=1}",
		"a; Remove-CMSoftwareUpdateDeployment -Force", "a | Out-Null", "a & calc.exe", "a && b || c",
		"line1\nline2", "line1\r\nline2", "\r", "\t tab", "<# block comment #>", "#< CLIXML",
		"# comment", "-EncodedCommand AAAA", "]]>", "<![CDATA[x]]>", "</rsp:Stream>", "&amp;&lt;",
		"\x00", "nul\x00inside", "\x1b[31mred", "\u202eevil", "\ufeffbom", "zero\u200bwidth",
		"😀 emoji", "Ünïcödé ñ 漢字 العربية", "\\\\server\\share", "%PATH%", "^&^|", "!x!",
		"'; exit 0; '", "\"; exit 0; \"", "\u2028\u2029",
		strings.Repeat("A", 256), strings.Repeat("ü", 300), strings.Repeat("x';$()`\n", 1250), // 10,000 chars
	}
}

func TestHostileStringsRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	strs := hostileStrings()
	require.GreaterOrEqual(t, len(strs), 30)
	require.Equal(t, 10000, len(strs[len(strs)-1]))

	// One call with all of them, as a batch would send them.
	type data struct {
		Names []string          `json:"names"`
		ByKey map[string]string `json:"by_key"`
	}
	in := data{Names: strs, ByKey: map[string]string{}}
	for _, s := range strs {
		in.ByKey[s] = s
	}
	var out data
	require.NoError(t, b.client.Run(context.Background(), echoTemplate, in, &out))
	require.Equal(t, in, out)

	// And each alone, so that one string cannot hide behind another.
	for i, s := range strs {
		var one struct {
			Name string `json:"name"`
		}
		require.NoError(t, b.client.Run(context.Background(), echoTemplate, map[string]string{"name": s}, &one), "string %d", i)
		require.Equal(t, s, one.Name, "string %d", i)
	}
	for _, line := range b.host.commandLines() {
		require.Equal(t, winrm.CommandLine(), line)
	}
}

func TestLargeInvocationIsWrittenInChunks(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	// About 300 KB of JSON data, base64'd once more in the envelope.
	names := make([]string, 3000)
	for i := range names {
		names[i] = strings.Repeat(string(rune('a'+i%26)), 90) + "'\"$`%^&|<>"
	}
	in := map[string]any{"names": names}
	var out struct {
		Names []string `json:"names"`
	}
	require.NoError(t, b.client.Run(context.Background(), echoTemplate, in, &out))
	require.Equal(t, names, out.Names)

	raw, err := json.Marshal(in)
	require.NoError(t, err)
	st := b.srv.Stats()
	// base64(JSON of base64 data) in chunks, then the bootstrap and del.
	payload := (len(raw)+2)/3*4*4/3 + (len(echoTemplate.Script)+2)/3*4*4/3
	require.GreaterOrEqual(t, st.Requests["Command"], payload/winrm.ChunkChars+2)
	require.Zero(t, st.Requests["Send"], "nothing travels over WinRS stdin")
	require.Equal(t, 1, st.Executions)
	require.Zero(t, st.TempFiles, "the invocation file is removed")
	require.Equal(t, 1, st.Requests["Create"], "one shell per call")
	require.Equal(t, []string{winrm.CommandLine()}, b.host.commandLines())
}

// A template longer than cmd.exe's whole command line (8,191 characters) runs:
// only its base64, in chunks, is ever on a command line.
func TestScriptAboveCommandLineLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	big := winrm.Template{Name: "big", Script: echoTemplate.Script + "# " + strings.Repeat("padding ", 4000) + "\n"}
	require.Greater(t, len(big.Script), 3*winrm.MaxCommandLine)
	b.host.alias(big.Script, echoTemplate.Script)
	var out map[string]string
	require.NoError(t, b.client.Run(context.Background(), big, map[string]string{"k": "v"}, &out))
	require.Equal(t, map[string]string{"k": "v"}, out)
	st := b.srv.Stats()
	require.GreaterOrEqual(t, st.Requests["Command"], 4*len(big.Script)/3/winrm.ChunkChars+2)
	require.Zero(t, st.Requests["Send"])
	require.Zero(t, st.TempFiles)
}

func TestCommandsStayUnderTheLimit(t *testing.T) {
	t.Parallel()

	envelope := []byte(strings.Repeat("{\"script\":\"x\"}", 10_000))
	writes, run, cleanup := winrm.Commands(strings.Repeat("0", 32), envelope)
	const temp = `C:\Users\a-rather-long-service-account-name.CORP\AppData\Local\Temp`
	var joined strings.Builder
	for i, w := range append(append([]string{}, writes...), run, cleanup) {
		require.Less(t, len(strings.ReplaceAll(w, "%TEMP%", temp)), winrm.MaxCommandLine, "command %d", i)
	}
	for i, w := range writes {
		_, chunk, ok := strings.Cut(w, " echo ")
		require.True(t, ok)
		require.Regexp(t, `^[A-Za-z0-9+/=]+$`, chunk, "write %d carries base64 only", i)
		require.Zero(t, len(chunk)%4, "write %d", i)
		joined.WriteString(chunk)
	}
	require.Equal(t, base64.StdEncoding.EncodeToString(envelope), joined.String())
	require.True(t, strings.HasPrefix(writes[0], `>"%TEMP%\autopatch-`), "the first write truncates")
	require.True(t, strings.HasPrefix(writes[1], `>>"%TEMP%\autopatch-`), "later writes append")
	require.Equal(t, winrm.CommandLine()+` <"`+winrm.InvocationFile(strings.Repeat("0", 32))+`"`, run)
}

func TestCommandLineIsConstant(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	for _, n := range []int{0, 1, 1000, 100_000, 1_000_000} {
		require.NoError(t, b.client.Run(context.Background(), echoTemplate, map[string]string{"s": strings.Repeat("x", n)}, nil))
	}
	lines := b.host.commandLines()
	require.Len(t, lines, 5)
	for _, line := range lines {
		require.Equal(t, winrm.CommandLine(), line)
		require.Less(t, len(line), 8191)
	}
}

func TestScriptError(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	clixml := "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">" +
		"<S S=\"Error\">Collection 'Patch &amp; Co' not found_x000D__x000A_</S>" +
		"<S S=\"Error\">At line:3 char:1_x000D__x000A_</S></Objs>"
	tests := []struct {
		name       string
		exit       int
		stderr     string
		wantStderr string
	}{
		{"Plain", 3, "No object corresponds to the specified parameters.\r\n", "No object corresponds to the specified parameters."},
		{"CLIXML", 1, clixml, "Collection 'Patch & Co' not found\r\nAt line:3 char:1"},
		{"Empty", 2, "", ""},
		{"Negative", -1, "boom", "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := b.client.Run(context.Background(), exitTemplate, map[string]any{"exit": tt.exit, "stderr": tt.stderr}, nil)
			var se *winrm.ScriptError
			require.ErrorAs(t, err, &se)
			require.Equal(t, winrm.ScriptError{Template: "exit", ExitCode: tt.exit, Stderr: tt.wantStderr}, *se)
			require.True(t, strings.HasPrefix(err.Error(), "winrm: exit: "), err.Error())
		})
	}
}

func TestBadAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	tests := []struct {
		name   string
		stdout string
		out    any
	}{
		{"NotJSON", "Deployment created", nil},
		{"Empty", "", nil},
		{"TwoDocuments", `{"a":1}{"b":2}`, nil},
		{"TwoLines", "{\"a\":1}\r\n{\"b\":2}\r\n", nil},
		{"Trailing", `{"a":1} and more`, nil},
		{"Truncated", `{"a":`, nil},
		{"WrongShape", `"a string"`, &struct{ A int }{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := b.client.Run(context.Background(), rawTemplate, map[string]string{"stdout": tt.stdout}, tt.out)
			var bad *winrm.BadAnswerError
			require.ErrorAs(t, err, &bad)
			require.Equal(t, "raw", bad.Template)
			require.Equal(t, tt.stdout, string(bad.Stdout))
			if tt.stdout != "" {
				require.NotContains(t, err.Error(), tt.stdout, "the answer may echo data: never print it")
			}
		})
	}

	// A BOM and a trailing CRLF, as PowerShell may write them, are fine.
	var out map[string]int
	require.NoError(t, b.client.Run(context.Background(), rawTemplate, map[string]string{"stdout": "\ufeff{\"a\":1}\r\n"}, &out))
	require.Equal(t, map[string]int{"a": 1}, out)
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		cfg  func(*winrm.Config)
	}{
		{"WrongPassword", func(c *winrm.Config) { c.Password = "wrong-" + testPassword }},
		{"WrongUser", func(c *winrm.Config) { c.User = "someone" }},
		// The simulator offers only Basic: an NTLM client must refuse to fall
		// back to Basic rather than hand out the password.
		{"NTLMNeverFallsBackToBasic", func(c *winrm.Config) { c.Auth = "ntlm" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{cfg: tt.cfg})
			err := b.client.Run(context.Background(), echoTemplate, map[string]string{"secret-data": "payload-xyz"}, nil)
			require.ErrorIs(t, err, winrm.ErrUnauthorized)
			require.True(t, strings.HasPrefix(err.Error(), "winrm: echo: "), err.Error())
			require.NotContains(t, err.Error(), testPassword)
			require.NotContains(t, err.Error(), "payload-xyz")
			require.Empty(t, b.host.commandLines())
			st := b.srv.Stats()
			require.Positive(t, st.Unauthorized)
			require.Zero(t, st.Requests["Create"])
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()

	ts := httptest.NewServer(http.NotFoundHandler())
	endpoint := ts.URL + "/wsman"
	ts.Close() // nothing listens there any more

	client, err := winrm.New(winrm.Config{Endpoint: endpoint, User: testUser, Password: testPassword, Auth: "basic"}, nil)
	require.NoError(t, err)
	err = client.Run(context.Background(), echoTemplate, nil, nil)
	require.ErrorIs(t, err, winrm.ErrUnreachable)
	require.NotErrorIs(t, err, winrm.ErrTimeout)
	require.True(t, strings.HasPrefix(err.Error(), "winrm: echo: "), err.Error())
	require.NoError(t, client.Close())

	t.Run("NotWSMan", func(t *testing.T) {
		t.Parallel()
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}))
		defer ts.Close()
		client, err := winrm.New(winrm.Config{Endpoint: ts.URL + "/wsman", User: testUser, Password: testPassword, Auth: "basic"}, nil)
		require.NoError(t, err)
		err = client.Run(context.Background(), echoTemplate, nil, nil)
		require.ErrorIs(t, err, winrm.ErrUnreachable)
		require.ErrorContains(t, err, "502")
	})
}

func TestTimeout(t *testing.T) {
	t.Parallel()

	t.Run("LatencyLongerThanTimeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{
			sim: wsmansim.Options{Latency: time.Hour},
			cfg: func(c *winrm.Config) { c.Timeout = 300 * time.Millisecond },
		})
		err := b.client.Run(context.Background(), echoTemplate, nil, nil)
		require.ErrorIs(t, err, winrm.ErrTimeout)
		require.True(t, strings.HasPrefix(err.Error(), "winrm: echo: "), err.Error())
		requireCleanedUp(t, b)
	})

	t.Run("ContextDeadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := b.client.Run(ctx, blockTemplate, nil, nil)
		require.ErrorIs(t, err, winrm.ErrTimeout)
		requireCleanedUp(t, b)
	})

	t.Run("ContextCancelled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-b.host.started
			cancel()
		}()
		err := b.client.Run(ctx, blockTemplate, nil, nil)
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, winrm.ErrTimeout)
		requireCleanedUp(t, b)
	})
}

// requireCleanedUp checks that a call that was abandoned still terminated its
// command and deleted its shell, and that its goroutine ended: Close waits for it.
func requireCleanedUp(t *testing.T, b *testBundle) {
	t.Helper()
	closed := make(chan struct{})
	go func() {
		_ = b.client.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatal("the abandoned call's goroutine did not end")
	}
	st := b.srv.Stats()
	require.Zero(t, st.Shells, "the shell must have been deleted")
	require.Equal(t, 1, st.Requests["Delete"])
}

func TestHTTPSCertificates(t *testing.T) {
	t.Parallel()

	t.Run("NoCAFile", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{https: true, noCACfg: true})
		err := b.client.Run(context.Background(), echoTemplate, nil, nil)
		require.ErrorIs(t, err, winrm.ErrUnreachable)
		var unknown x509.UnknownAuthorityError
		require.ErrorAs(t, err, &unknown)
		require.Zero(t, b.srv.Stats().Requests["Create"])
	})

	t.Run("InsecureSkipVerify", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{https: true, noCACfg: true, cfg: func(c *winrm.Config) { c.InsecureSkipVerify = true }})
		var out map[string]string
		require.NoError(t, b.client.Run(context.Background(), echoTemplate, map[string]string{"a": "b"}, &out))
		require.Equal(t, map[string]string{"a": "b"}, out)
	})

	t.Run("WrongCA", func(t *testing.T) {
		t.Parallel()
		_, _, otherCA, err := wsmansim.NewTLSCert()
		require.NoError(t, err)
		otherFile := filepath.Join(t.TempDir(), "other.pem")
		require.NoError(t, os.WriteFile(otherFile, otherCA, 0o600))
		b := setup(t, setupOpts{https: true, noCACfg: true, cfg: func(c *winrm.Config) { c.CAFile = otherFile }})
		err = b.client.Run(context.Background(), echoTemplate, nil, nil)
		require.ErrorIs(t, err, winrm.ErrUnreachable)
		var verr *tls.CertificateVerificationError
		require.ErrorAs(t, err, &verr)
	})
}

func TestReceivePollsUntilDone(t *testing.T) {
	t.Parallel()

	var srv *wsmansim.Server
	ready := make(chan *wsmansim.Server, 1)
	exec := func(ctx context.Context, line string, stdin []byte) ([]byte, []byte, int) {
		s := <-ready
		ready <- s
		// Finish only after the client has been told "no output yet" twice.
		for s.Stats().ReceiveTimeouts < 2 {
			select {
			case <-ctx.Done():
				return nil, nil, 1
			case <-time.After(5 * time.Millisecond):
			}
		}
		return wsmansim.PowerShell(func(context.Context, string, []byte) ([]byte, string, int) {
			return []byte(`{"done":true}`), "", 0
		})(ctx, line, stdin)
	}
	b := setup(t, setupOpts{sim: wsmansim.Options{Exec: exec, MaxOperationTimeout: 20 * time.Millisecond}})
	srv = b.srv
	ready <- srv

	var out struct{ Done bool }
	require.NoError(t, b.client.Run(context.Background(), echoTemplate, nil, &out))
	require.True(t, out.Done)
	require.GreaterOrEqual(t, srv.Stats().ReceiveTimeouts, 2)
}

func TestShellQuota(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{sim: wsmansim.Options{MaxShellsPerUser: 1}})

	first := make(chan error, 1)
	go func() { first <- b.client.Run(context.Background(), blockTemplate, nil, nil) }()
	<-b.host.started // the first call holds the only shell

	err := b.client.Run(context.Background(), echoTemplate, nil, nil)
	require.ErrorIs(t, err, winrm.ErrUnreachable)
	var fault *winrm.FaultError
	require.ErrorAs(t, err, &fault)
	require.Equal(t, "2150859173", fault.WSManCode)

	close(b.host.release)
	require.NoError(t, <-first)
	require.NoError(t, b.client.Run(context.Background(), echoTemplate, nil, nil))
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out map[string]int
			if err := b.client.Run(context.Background(), echoTemplate, map[string]int{"i": i}, &out); err != nil {
				errs <- err
				return
			}
			if out["i"] != i {
				errs <- errors.New("answer of another call")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, b.srv.Stats().Shells)
}

func TestKerberosUnreachableKDC(t *testing.T) {
	t.Parallel()

	// A KDC address where nothing listens: the call must fail as unreachable
	// before anything reaches the host.
	ts := httptest.NewServer(http.NotFoundHandler())
	kdc := ts.Listener.Addr().String()
	ts.Close()
	krb5 := filepath.Join(t.TempDir(), "krb5.conf")
	require.NoError(t, os.WriteFile(krb5, []byte("[libdefaults]\n default_realm = CORP.EXAMPLE\n udp_preference_limit = 1\n"+
		"[realms]\n CORP.EXAMPLE = {\n  kdc = "+kdc+"\n }\n"), 0o600))

	b := setup(t, setupOpts{cfg: func(c *winrm.Config) {
		c.Auth = "kerberos"
		c.User = "svc-autopatch@corp.example"
		c.KrbConfig = krb5
	}})
	err := b.client.Run(context.Background(), echoTemplate, nil, nil)
	require.ErrorIs(t, err, winrm.ErrUnreachable)
	require.NotContains(t, err.Error(), testPassword)
	require.Zero(t, b.srv.Stats().Requests["Create"])
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	_, _, caPEM, err := wsmansim.NewTLSCert()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(caFile, caPEM, 0o600))
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))

	ok := winrm.Config{Endpoint: "https://sccm01.corp.example:5986/wsman", User: "u", Password: "p"}
	tests := []struct {
		name    string
		mutate  func(*winrm.Config)
		wantErr string
	}{
		{"Valid", func(*winrm.Config) {}, ""},
		{"DefaultPortAndPath", func(c *winrm.Config) { c.Endpoint = "https://sccm01" }, ""},
		{"ValidCAFile", func(c *winrm.Config) { c.CAFile = caFile }, ""},
		{"BasicHTTP", func(c *winrm.Config) { c.Endpoint = "http://h:5985/wsman"; c.Auth = "Basic" }, ""},
		{"EmptyEndpoint", func(c *winrm.Config) { c.Endpoint = "" }, "endpoint"},
		{"BadScheme", func(c *winrm.Config) { c.Endpoint = "ftp://h/wsman" }, "scheme"},
		{"NoHost", func(c *winrm.Config) { c.Endpoint = "https:///wsman" }, "no host"},
		{"CredentialsInURL", func(c *winrm.Config) { c.Endpoint = "https://u:p@h/wsman" }, "credentials"},
		{"Query", func(c *winrm.Config) { c.Endpoint = "https://h/wsman?x=1" }, "query"},
		{"BadPort", func(c *winrm.Config) { c.Endpoint = "https://h:99999/wsman" }, "port"},
		{"UnknownAuth", func(c *winrm.Config) { c.Auth = "digest" }, "unknown auth"},
		{"NoPassword", func(c *winrm.Config) { c.Password = "" }, "password"},
		{"NoUser", func(c *winrm.Config) { c.User = "" }, "user"},
		{"NegativeTimeout", func(c *winrm.Config) { c.Timeout = -time.Second }, "timeout"},
		{"TinyEnvelope", func(c *winrm.Config) { c.MaxEnvelopeSize = 100 }, "envelope"},
		{"MissingCAFile", func(c *winrm.Config) { c.CAFile = "/nonexistent/ca.pem" }, "CA file"},
		{"CAFileNotPEM", func(c *winrm.Config) { c.CAFile = notPEM }, "no PEM"},
		{"CAFileOverHTTP", func(c *winrm.Config) { c.Endpoint = "http://h/wsman"; c.CAFile = caFile }, "not https"},
		{"KerberosNoConfig", func(c *winrm.Config) { c.Auth = "kerberos"; c.KrbConfig = "/nonexistent/krb5.conf" }, "krb5.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.mutate(&cfg)
			c, err := winrm.New(cfg, nil)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, c.Close())
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.True(t, strings.HasPrefix(err.Error(), "winrm: "), err.Error())
			require.NotContains(t, err.Error(), "p@h")
		})
	}
}

// BenchmarkRunRoundTrip measures one echo call (shell, command, stdin, output,
// signal, delete: six HTTP requests) against the simulator with no latency.
func BenchmarkRunRoundTrip(b *testing.B) {
	tb := setup(b, setupOpts{})
	data := map[string]any{"deployments": []map[string]string{
		{"name": "AP-CHG0031234-sql-prod-2026-12 Servers", "collection": "Patch - SQL", "update_group": "2026-12 Servers"},
	}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := tb.client.Run(ctx, echoTemplate, data, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
