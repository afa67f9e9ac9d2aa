package wsmansim_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mz "github.com/masterzen/winrm"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

const (
	user     = "sim"
	password = "pa$$w0rd"
)

type testBundle struct {
	srv  *wsmansim.Server
	url  string
	host string
	port int
}

func setup(t *testing.T, opts wsmansim.Options) *testBundle {
	t.Helper()
	opts.User, opts.Password = user, password
	srv := wsmansim.New(opts)
	mux := http.NewServeMux()
	mux.Handle("/wsman", srv)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close)
	host, portStr, err := net.SplitHostPort(ts.Listener.Addr().String())
	require.NoError(t, err)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	return &testBundle{srv: srv, url: ts.URL + "/wsman", host: host, port: port}
}

// client is the real masterzen/winrm client with the library's own defaults.
func (b *testBundle) client(t *testing.T, envelopeSize int) *mz.Client {
	t.Helper()
	params := mz.NewParameters("PT60S", "en-US", envelopeSize)
	c, err := mz.NewClientWithParameters(mz.NewEndpoint(b.host, b.port, false, false, nil, nil, nil, 0), user, password, params)
	require.NoError(t, err)
	return c
}

// post sends a raw SOAP body.
func (b *testBundle) post(t *testing.T, body, contentType string, auth bool) (*http.Response, string) {
	t.Helper()
	resp, answer, err := b.postRaw(body, contentType, auth)
	require.NoError(t, err)
	return resp, answer
}

// postRaw is post for goroutines other than the test's.
func (b *testBundle) postRaw(body, contentType string, auth bool) (*http.Response, string, error) {
	req, err := http.NewRequest(http.MethodPost, b.url, strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", contentType)
	if auth {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp, string(answer), err
}

const soapType = "application/soap+xml;charset=UTF-8"

func params() *mz.Parameters { return mz.NewParameters("PT60S", "en-US", 153600) }

// wsmanFault is what a test reads from a fault answer.
type wsmanFault struct {
	Subcode string `xml:"Body>Fault>Code>Subcode>Value"`
	Reason  string `xml:"Body>Fault>Reason>Text"`
	Detail  struct {
		Code string `xml:"Code,attr"`
	} `xml:"Body>Fault>Detail>WSManFault"`
}

func requireFault(t *testing.T, resp *http.Response, body, subcode, code string) {
	t.Helper()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode, body)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/soap+xml")
	var f wsmanFault
	require.NoError(t, xml.Unmarshal([]byte(body), &f), body)
	require.Equal(t, subcode, f.Subcode)
	require.Equal(t, code, f.Detail.Code)
	require.NotEmpty(t, f.Reason)
}

func envelope(script, data string) string {
	b, _ := json.Marshal(map[string]string{
		"script": base64.StdEncoding.EncodeToString([]byte(script)),
		"data":   base64.StdEncoding.EncodeToString([]byte(data)),
	})
	return string(b)
}

func TestPowerShellAdapter(t *testing.T) {
	t.Parallel()

	const template = "param($Data)\n$Data | ConvertTo-Json -Compress\n"
	var (
		mu    sync.Mutex
		calls []string
	)
	run := func(_ context.Context, script string, data []byte) ([]byte, string, int) {
		mu.Lock()
		calls = append(calls, script+"|"+string(data))
		mu.Unlock()
		if script != template {
			return nil, "not an approved template", 1
		}
		var d struct{ Exit int }
		_ = json.Unmarshal(data, &d)
		return data, "", d.Exit
	}
	b := setup(t, wsmansim.Options{Exec: wsmansim.PowerShell(run)})
	c := b.client(t, 153600)

	tests := []struct {
		name       string
		line       string
		stdin      string
		wantExit   int
		wantStdout string
		wantStderr string
		wantCall   string
	}{
		{"Template", winrm.CommandLine(), envelope(template, `{"a":"'$()"}`), 0, `{"a":"'$()"}`, "", template + `|{"a":"'$()"}`},
		{"TemplateExitCode", winrm.CommandLine(), envelope(template, `{"Exit":5}`), 5, `{"Exit":5}`, "", template + `|{"Exit":5}`},
		{"OtherScriptReachesRun", winrm.CommandLine(), envelope("param($Data)\nRemove-Item C:\\", `{}`), 1, "", "not an approved template", "param($Data)\nRemove-Item C:\\|{}"},
		{"EncodedOtherScript", "powershell.exe -EncodedCommand " + utf16b64("Get-Date; Remove-Item C:\\"), "", 1, "",
			"The term 'Get-Date' is not recognized as the name of a cmdlet", ""},
		{"LibraryPowershellWrapper", mz.Powershell("Remove-Item C:\\ -Recurse"), "", 1, "", "is not recognized as the name of a cmdlet", ""},
		{"PlainCommand", "powershell.exe -NoProfile -Command Remove-Item C:\\", "", 1, "", "The term 'Remove-Item' is not recognized", ""},
		{"CmdProgram", "whoami /all", "", 1, "", "'whoami' is not recognized as an internal or external command", ""},
		{"BadEncoding", "powershell.exe -EncodedCommand !!!", "", 1, "", "not properly encoded", ""},
		{"BootstrapPlusSpace", winrm.CommandLine() + " ", envelope(template, `{}`), 1, "", "is not recognized", ""},
		{"BootstrapBadStdin", winrm.CommandLine(), "Remove-Item C:\\", 1, "", "malformed invocation envelope", ""},
		{"BootstrapNoFile", winrm.CommandLine() + ` <"%TEMP%\never-written.b64"`, "", 1, "", "The system cannot find the file specified.", ""},
		{"NoParamData", winrm.CommandLine(), envelope("Remove-Item C:\\", `{}`), 1, "",
			"A parameter cannot be found that matches parameter name 'Data'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			calls = nil
			mu.Unlock()
			code, stdout, stderr := runViaFile(t, c, tt.line, tt.stdin)
			require.Equal(t, tt.wantExit, code)
			require.Equal(t, tt.wantStdout, stdout)
			require.Contains(t, stderr, tt.wantStderr)
			mu.Lock()
			defer mu.Unlock()
			if tt.wantCall == "" {
				require.Empty(t, calls, "run must not see a refused invocation")
			} else {
				require.Equal(t, []string{tt.wantCall}, calls)
			}
		})
	}
}

// runViaFile runs line in one shell the way autopatch's client does: when stdin
// is not empty it is written to an invocation file with winrm.Commands and line
// gets it as redirected stdin. Nothing is sent to WinRS stdin.
func runViaFile(t *testing.T, c *mz.Client, line, stdin string) (code int, stdout, stderr string) {
	t.Helper()
	shell, err := c.CreateShell()
	require.NoError(t, err)
	defer shell.Close()
	if stdin != "" {
		const id = "0123456789abcdef0123456789abcdef"
		writes, _, _ := winrm.Commands(id, []byte(stdin))
		for _, w := range writes {
			code, _, errText := execute(t, shell, w)
			require.Zero(t, code, errText)
		}
		line += ` <"` + winrm.InvocationFile(id) + `"`
	}
	return execute(t, shell, line)
}

// execute runs one command in shell without touching its stdin.
func execute(t *testing.T, shell *mz.Shell, line string) (int, string, string) {
	t.Helper()
	cmd, err := shell.Execute(line)
	require.NoError(t, err)
	var stdout, stderr strings.Builder
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(&stdout, cmd.Stdout) }()
	go func() { defer wg.Done(); _, _ = io.Copy(&stderr, cmd.Stderr) }()
	cmd.Wait()
	wg.Wait()
	require.NoError(t, cmd.Close())
	return cmd.ExitCode(), stdout.String(), stderr.String()
}

// The old way, the bootstrap reading WinRS stdin, as masterzen/winrm sends it
// (console mode): End="true" is sent but, as on Windows, the reader never sees
// end-of-input, so the template never runs and the call only ends by timing out.
func TestConsoleModeStdinNeverEnds(t *testing.T) {
	t.Parallel()

	ran := make(chan string, 1)
	b := setup(t, wsmansim.Options{MaxOperationTimeout: 50 * time.Millisecond,
		Exec: func(_ context.Context, _ string, stdin []byte) ([]byte, []byte, int) {
			ran <- string(stdin)
			return []byte("{}"), nil, 0
		}})
	c := b.client(t, 153600)
	stdin := base64.StdEncoding.EncodeToString([]byte(envelope("param($Data)\n'{}'\n", "{}")))
	done := make(chan error, 1)
	go func() {
		_, err := c.RunWithInput(winrm.CommandLine(), io.Discard, io.Discard, strings.NewReader(stdin))
		done <- err
	}()
	require.Eventually(t, func() bool { return b.srv.Stats().StdinNeverEnded == 1 }, time.Minute, 10*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the call ended (%v): console-mode stdin must never reach end-of-input", err)
	case <-ran:
		t.Fatal("the bootstrap ran: console-mode stdin must never reach end-of-input")
	case <-time.After(500 * time.Millisecond): // several Receives timed out meanwhile
	}
	require.Positive(t, b.srv.Stats().ReceiveTimeouts)
	require.Zero(t, b.srv.Stats().Executions)
	// The library polls on; the test server's clean-up ends it with a
	// connection error.
}

// In pipe mode (WINRS_CONSOLEMODE_STDIN=FALSE, what Ansible and pywinrm use to
// send stdin) End="true" is end-of-input and the bootstrap runs.
func TestPipeModeStdinEnds(t *testing.T) {
	t.Parallel()

	ran := make(chan string, 1)
	b := setup(t, wsmansim.Options{Exec: func(_ context.Context, line string, stdin []byte) ([]byte, []byte, int) {
		ran <- line + "|" + string(stdin)
		return []byte("{}"), nil, 0
	}})
	startCommand(t, b, "pipe")
	require.Equal(t, winrm.CommandLine()+"|pipe", waitFor(t, ran))
	require.Zero(t, b.srv.Stats().StdinNeverEnded)
}

// cmd.exe's limit applies after %TEMP% is expanded, and the sim's cmd.exe only
// echoes base64 into files.
func TestCmdExeModel(t *testing.T) {
	t.Parallel()

	b := setup(t, wsmansim.Options{})
	c := b.client(t, 153600)
	shell, err := c.CreateShell()
	require.NoError(t, err)
	defer shell.Close()

	long := `>"%TEMP%\x.b64" echo ` + strings.Repeat("A", winrm.MaxCommandLine-30)
	code, _, stderr := execute(t, shell, long)
	require.Equal(t, 1, code)
	require.Equal(t, "The command line is too long.\r\n", stderr)

	code, _, stderr = execute(t, shell, `>"%TEMP%\x.b64" echo $(Remove-Item C:\)`)
	require.Equal(t, 1, code, "only base64 is ever echoed into a file")
	require.Contains(t, stderr, "is not recognized")
	require.Zero(t, b.srv.Stats().TempFiles)

	code, _, _ = execute(t, shell, `>"%TEMP%\x.b64" echo QUJD`)
	require.Zero(t, code)
	code, _, _ = execute(t, shell, `>>"%TEMP%\X.b64" echo REVG`)
	require.Zero(t, code)
	require.Equal(t, 1, b.srv.Stats().TempFiles)
	code, _, _ = execute(t, shell, `del /q "%TEMP%\x.b64"`)
	require.Zero(t, code)
	require.Zero(t, b.srv.Stats().TempFiles)
	require.Zero(t, b.srv.Stats().Requests["Send"])
}

func utf16b64(s string) string {
	var b []byte
	for _, r := range s { // ASCII test input
		b = append(b, byte(r), 0)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestDefaultExecAndPanic(t *testing.T) {
	t.Parallel()

	b := setup(t, wsmansim.Options{})
	_, stderr, code, err := b.client(t, 153600).RunWithString("ipconfig /all", "")
	require.NoError(t, err)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "'ipconfig' is not recognized")

	p := setup(t, wsmansim.Options{Exec: func(context.Context, string, []byte) ([]byte, []byte, int) { panic("boom") }})
	_, stderr, code, err = p.client(t, 153600).RunWithString("x", "")
	require.NoError(t, err)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "boom")
}

func TestReceiveFitsClientEnvelope(t *testing.T) {
	t.Parallel()

	out := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB
	errText := strings.Repeat("warning ", 6000)            // 48 KB
	b := setup(t, wsmansim.Options{Exec: func(context.Context, string, []byte) ([]byte, []byte, int) {
		return out, []byte(errText), 7
	}})
	const envelopeSize = 16 * 1024
	stdout, stderr, code, err := b.client(t, envelopeSize).RunWithString("x", "")
	require.NoError(t, err)
	require.Equal(t, 7, code)
	require.Equal(t, string(out), stdout)
	require.Equal(t, errText, stderr)
	// Each answer must fit the client's 16 KiB, so many Receives were needed.
	require.GreaterOrEqual(t, b.srv.Stats().Requests["Receive"], (len(out)+len(errText))/envelopeSize)
}

func TestRawProtocol(t *testing.T) {
	t.Parallel()
	b := setup(t, wsmansim.Options{MaxShellsPerUser: 2})
	create := mz.NewOpenShellRequest(b.url, params()).String()

	t.Run("Unauthorized", func(t *testing.T) {
		resp, body := b.post(t, create, soapType, false)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Equal(t, `Basic realm="WSMAN"`, resp.Header.Get("WWW-Authenticate"))
		require.Empty(t, body)

		req, err := http.NewRequest(http.MethodPost, b.url, strings.NewReader(create))
		require.NoError(t, err)
		req.SetBasicAuth(user, password+"x")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})

	t.Run("MethodAndContentType", func(t *testing.T) {
		resp, err := http.Get(b.url)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		resp, _ = b.post(t, create, "text/plain", true)
		require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	})

	t.Run("UnknownAction", func(t *testing.T) {
		get := strings.Replace(create, "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", 1)
		resp, body := b.post(t, get, soapType, true)
		requireFault(t, resp, body, "a:ActionNotSupported", "2150858753")
	})

	t.Run("UnknownResourceURI", func(t *testing.T) {
		other := strings.Replace(create, "windows/shell/cmd", "windows/shell/powershell", 1)
		resp, body := b.post(t, other, soapType, true)
		requireFault(t, resp, body, "w:DestinationUnreachable", "2150858752")
	})

	t.Run("NotXML", func(t *testing.T) {
		resp, body := b.post(t, "<env:Envelope", soapType, true)
		requireFault(t, resp, body, "w:SchemaValidationError", "2150858791")
	})

	t.Run("TooLarge", func(t *testing.T) {
		big := strings.Replace(create, "<rsp:InputStreams>", "<rsp:InputStreams>"+strings.Repeat(" ", 600*1024), 1)
		resp, body := b.post(t, big, soapType, true)
		requireFault(t, resp, body, "w:EncodingLimit", "2150858790")
	})

	t.Run("ShellLifecycleAndQuota", func(t *testing.T) {
		var ids []string
		for range 2 {
			resp, body := b.post(t, create, soapType, true)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			id, err := mz.ParseOpenShellResponse(body)
			require.NoError(t, err)
			require.NotEmpty(t, id)
			ids = append(ids, id)
		}
		require.NotEqual(t, ids[0], ids[1])
		resp, body := b.post(t, create, soapType, true)
		requireFault(t, resp, body, "w:QuotaLimit", "2150859173")

		del := mz.NewDeleteShellRequest(b.url, ids[0], params()).String()
		resp, body = b.post(t, del, soapType, true)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		resp, body = b.post(t, del, soapType, true)
		requireFault(t, resp, body, "w:InvalidSelectors", "2150858843")

		resp, body = b.post(t, create, soapType, true)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)

		// Commands of an unknown shell are refused the same way.
		cmd := mz.NewExecuteCommandRequest(b.url, "NO-SUCH-SHELL", "dir", nil, params()).String()
		resp, body = b.post(t, cmd, soapType, true)
		requireFault(t, resp, body, "w:InvalidSelectors", "2150858843")
	})
}

// startCommand opens a shell and a command and completes its stdin, with raw
// requests (no Receive in flight), returning the shell and command IDs. It asks
// for pipe mode (WINRS_CONSOLEMODE_STDIN=FALSE), the mode in which End="true"
// reaches the process as end-of-input.
func startCommand(t *testing.T, b *testBundle, stdin string) (shellID, commandID string) {
	t.Helper()
	resp, body := b.post(t, mz.NewOpenShellRequest(b.url, params()).String(), soapType, true)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	shellID, err := mz.ParseOpenShellResponse(body)
	require.NoError(t, err)
	command := mz.NewExecuteCommandRequest(b.url, shellID, winrm.CommandLine(), nil, params()).String()
	pipe := strings.Replace(command, `Name="WINRS_CONSOLEMODE_STDIN">TRUE<`, `Name="WINRS_CONSOLEMODE_STDIN">FALSE<`, 1)
	require.NotEqual(t, command, pipe, "masterzen/winrm's Command request changed")
	resp, body = b.post(t, pipe, soapType, true)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	commandID, err = mz.ParseExecuteCommandResponse(body)
	require.NoError(t, err)
	resp, body = b.post(t, mz.NewSendInputRequest(b.url, shellID, commandID, []byte(stdin), true, params()).String(), soapType, true)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	return shellID, commandID
}

// blockingExec blocks until its ctx is cancelled and reports that.
func blockingExec(started, cancelled chan<- string) wsmansim.ExecFunc {
	return func(ctx context.Context, _ string, stdin []byte) ([]byte, []byte, int) {
		started <- string(stdin)
		<-ctx.Done()
		cancelled <- string(stdin)
		return nil, nil, 1
	}
}

func waitFor(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute): // hang guard
		t.Fatal("timed out waiting")
		return ""
	}
}

func TestIdleShellIsRemoved(t *testing.T) {
	t.Parallel()

	started, cancelled := make(chan string, 1), make(chan string, 1)
	b := setup(t, wsmansim.Options{IdleTimeout: time.Hour, Exec: blockingExec(started, cancelled)})
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	wsmansim.SetClock(b.srv, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	})

	shellID, _ := startCommand(t, b, "left behind")
	require.Equal(t, "left behind", waitFor(t, started))
	require.Equal(t, 1, b.srv.Stats().Shells)

	mu.Lock()
	now = now.Add(59 * time.Minute)
	mu.Unlock()
	require.Equal(t, 1, b.srv.Stats().Shells, "not idle long enough")

	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	require.Zero(t, b.srv.Stats().Shells)
	require.Equal(t, "left behind", waitFor(t, cancelled), "the process of an idle shell is terminated")

	resp, body := b.post(t, mz.NewDeleteShellRequest(b.url, shellID, params()).String(), soapType, true)
	requireFault(t, resp, body, "w:InvalidSelectors", "2150858843")
}

func TestSignalAndClose(t *testing.T) {
	t.Parallel()

	started, cancelled := make(chan string, 2), make(chan string, 2)
	b := setup(t, wsmansim.Options{Exec: blockingExec(started, cancelled)})

	shellID, commandID := startCommand(t, b, "first")
	require.Equal(t, "first", waitFor(t, started))
	resp, body := b.post(t, mz.NewSignalRequest(b.url, shellID, commandID, params()).String(), soapType, true)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "first", waitFor(t, cancelled))
	// The command is gone; its shell is not.
	resp, body = b.post(t, mz.NewGetOutputRequest(b.url, shellID, commandID, "stdout stderr", params()).String(), soapType, true)
	requireFault(t, resp, body, "w:InvalidParameter", "87")
	require.Equal(t, 1, b.srv.Stats().Shells)

	startCommand(t, b, "second")
	require.Equal(t, "second", waitFor(t, started))
	b.srv.Close() // returns only once Exec has returned
	require.Equal(t, "second", waitFor(t, cancelled))
	require.Zero(t, b.srv.Stats().Shells)
}

func TestLatencyDelaysExec(t *testing.T) {
	t.Parallel()

	// A command whose shell is deleted during the latency never runs.
	ran := make(chan string, 1)
	b := setup(t, wsmansim.Options{Latency: time.Hour, Exec: func(_ context.Context, _ string, stdin []byte) ([]byte, []byte, int) {
		ran <- string(stdin)
		return nil, nil, 0
	}})
	shellID, commandID := startCommand(t, b, "never")
	// A Receive waiting for the output learns that the process is gone rather
	// than getting an empty "Done, exit 0" (or, if it comes late, that the
	// shell is gone).
	received := make(chan string, 1)
	go func() {
		resp, body, err := b.postRaw(mz.NewGetOutputRequest(b.url, shellID, commandID, "stdout stderr", params()).String(), soapType, true)
		if err != nil {
			received <- err.Error()
			return
		}
		received <- strconv.Itoa(resp.StatusCode) + " " + body
	}()
	resp, body := b.post(t, mz.NewDeleteShellRequest(b.url, shellID, params()).String(), soapType, true)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	answer := waitFor(t, received)
	require.True(t, strings.HasPrefix(answer, "500 "), answer)
	require.NotContains(t, answer, "CommandState/Done")
	b.srv.Close()
	require.Empty(t, ran)
	require.Zero(t, b.srv.Stats().Executions)
}

func TestNewTLSCert(t *testing.T) {
	t.Parallel()

	certPEM, keyPEM, caPEM, err := wsmansim.NewTLSCert("sccm01.corp.example", "10.1.2.3")
	require.NoError(t, err)
	require.Contains(t, string(keyPEM), "PRIVATE KEY")

	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)

	for _, name := range []string{"localhost", "127.0.0.1", "::1", "sccm01.corp.example", "10.1.2.3"} {
		_, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name})
		require.NoError(t, err, name)
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "evil.example"})
	require.Error(t, err)
	_, err = cert.Verify(x509.VerifyOptions{Roots: x509.NewCertPool(), DNSName: "localhost"})
	require.Error(t, err)
}
