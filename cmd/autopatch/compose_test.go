package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/internal/config"
)

// There is no Docker engine where the tests run, so these tests check what
// can be checked without one: the compose files' structure (what `docker
// compose config` would refuse, and the promises: a restart policy, a
// healthcheck on /readyz, dependencies on healthy services), that every
// setting they pass is one autopatch knows and that the simulated variant's
// settings pass serve's validation, that the commands they run exist, and
// the Dockerfile's stages. Not checked: that the images pull and build, that
// the containers start and reach each other, file ownership in volumes.

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       string            `yaml:"build"`
	Restart     string            `yaml:"restart"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Secrets     []string          `yaml:"secrets"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		StartPeriod string   `yaml:"start_period"`
		Retries     int      `yaml:"retries"`
	} `yaml:"healthcheck"`
}

func readCompose(t *testing.T, name string) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	require.NoError(t, err)
	var f composeFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error here as in docker compose config
	require.NoError(t, dec.Decode(&f), name)
	return f
}

// checkServices holds for both compose files.
func checkServices(t *testing.T, name string, f composeFile) {
	t.Helper()
	known := map[string]bool{"AUTOPATCH_URL": true} // read by autopatch send
	for _, s := range config.Settings() {
		known[s.Env] = true
		if s.Secret {
			known[s.Env+"_FILE"] = true
		}
	}
	for svcName, svc := range f.Services {
		require.Equal(t, "unless-stopped", svc.Restart, "%s: %s has a restart policy", name, svcName)
		require.NotNil(t, svc.Healthcheck, "%s: %s has a healthcheck", name, svcName)
		require.NotEmpty(t, svc.Healthcheck.Test)
		for dep, d := range svc.DependsOn {
			require.Contains(t, f.Services, dep, "%s: %s depends on a service that exists", name, svcName)
			require.Equal(t, "service_healthy", d.Condition, "%s: %s waits for %s to be healthy", name, svcName, dep)
		}
		for _, s := range svc.Secrets {
			require.Contains(t, f.Secrets, s, "%s: %s uses a declared secret", name, svcName)
		}
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if src == "./schedules.yaml" {
					continue // the administrator's own, see the file's header
				}
				_, err := os.Stat(filepath.Join("..", "..", src))
				require.NoError(t, err, "%s: %s mounts a file of the repository", name, svcName)
			} else {
				require.Contains(t, f.Volumes, src, "%s: %s mounts a declared volume", name, svcName)
			}
		}
		if svc.Build != "" || strings.HasPrefix(svc.Image, "autopatch") {
			for k := range svc.Environment {
				require.True(t, known[k], "%s: %s sets %s, which autopatch does not know", name, svcName, k)
			}
			// The image is distroless: the healthcheck runs the binary.
			require.Equal(t, "CMD", svc.Healthcheck.Test[0])
			require.Equal(t, []string{"/autopatch", "healthcheck", "--url"}, svc.Healthcheck.Test[1:4])
		}
	}
	app, ok := f.Services["autopatch"]
	require.True(t, ok)
	require.Equal(t, "http://127.0.0.1:8080/readyz", app.Healthcheck.Test[4], "%s: autopatch's health is /readyz", name)
	require.Contains(t, app.DependsOn, "postgres")
	require.Contains(t, app.Ports, "8080:8080")
}

func TestComposeWithSimulator(t *testing.T) {
	t.Parallel()
	f := readCompose(t, "docker-compose.yml")
	checkServices(t, "docker-compose.yml", f)
	require.ElementsMatch(t, []string{"postgres", "sim", "autopatch"}, keys(f.Services))

	app := f.Services["autopatch"]
	require.Contains(t, app.DependsOn, "sim")
	cfg, err := config.LoadServe(func(k string) string { return app.Environment[k] }, "")
	require.NoError(t, err, "the settings of docker-compose.yml pass serve's validation")
	for _, endpoint := range []string{cfg.SCCM.Endpoint, cfg.SCOM.Endpoint, cfg.ServiceNow.URL} {
		require.Contains(t, endpoint, "//sim:", "autopatch is pointed at the simulator")
	}

	// The simulator's command uses flags `autopatch sim` has, with the ports,
	// credentials and schedules file autopatch is given.
	sim := f.Services["sim"]
	require.Equal(t, "sim", sim.Command[0])
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"sim", "--help"}, &stdout, &stderr))
	flags := map[string]string{}
	for _, arg := range sim.Command[1:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		require.Regexp(t, `(?m)^  -`+regexp.QuoteMeta(name)+`( |$)`, stderr.String(), "autopatch sim has --%s", name)
		flags[name] = value
	}
	require.Equal(t, "0.0.0.0", flags["listen-host"], "reachable from the autopatch container")
	require.Equal(t, "http://sim:"+flags["winrm-port"]+"/wsman", cfg.SCCM.Endpoint)
	require.Equal(t, "http://sim:"+flags["servicenow-port"], cfg.ServiceNow.URL)
	require.Equal(t, flags["winrm-user"], cfg.SCCM.User)
	require.Equal(t, flags["winrm-password"], cfg.SCCM.Password.Reveal())
	require.Equal(t, flags["servicenow-user"], cfg.ServiceNow.User)
	require.Equal(t, flags["servicenow-password"], cfg.ServiceNow.Password.Reveal())
	require.Equal(t, flags["try-schedules"], cfg.SchedulesFile, "autopatch reads the schedules the simulator writes")
	require.Equal(t, []string{"CMD", "/autopatch", "healthcheck", "--url", "http://127.0.0.1:" + flags["control-port"] + "/healthz"}, sim.Healthcheck.Test)
	require.Contains(t, sim.Ports, flags["control-port"]+":"+flags["control-port"], "GET /state from the host")
}

func TestComposeProduction(t *testing.T) {
	t.Parallel()
	f := readCompose(t, "docker-compose.prod.yml")
	checkServices(t, "docker-compose.prod.yml", f)
	require.ElementsMatch(t, []string{"postgres", "autopatch"}, keys(f.Services), "no simulator")
	app := f.Services["autopatch"]
	for k, v := range app.Environment {
		require.False(t, strings.Contains(k, "PASSWORD") && !strings.HasSuffix(k, "_FILE"), "%s: secrets come from files", k)
		require.NotContains(t, v, "sim", k)
	}
	for _, s := range []string{"webhook_secret", "api_token", "database_url"} {
		require.Contains(t, app.Secrets, s)
	}
}

// TestDockerfile checks the stages: a build stage that downloads modules
// before copying the sources, builds statically with the build info, and a
// distroless non-root runtime stage whose healthcheck is /readyz.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	type stage struct {
		name, base string
		lines      []string
	}
	var stages []*stage
	from := regexp.MustCompile(`(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$`)
	sc := bufio.NewScanner(bytes.NewReader(bytes.ReplaceAll(b, []byte("\\\n"), nil)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := from.FindStringSubmatch(line); m != nil {
			stages = append(stages, &stage{name: m[2], base: m[1]})
			continue
		}
		require.NotEmpty(t, stages, "an instruction before FROM: %s", line)
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	require.Len(t, stages, 2)
	build, runtime := stages[0], stages[1]
	require.Equal(t, "build", build.name)
	require.True(t, strings.HasPrefix(build.base, "golang:"), build.base)
	idx := func(s *stage, prefix string) int {
		return slices.IndexFunc(s.lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	require.Less(t, idx(build, "RUN go mod download"), idx(build, "COPY . ."), "the module layer comes first")
	buildLine := build.lines[idx(build, "RUN CGO_ENABLED=0 go build")]
	require.Contains(t, buildLine, "-trimpath")
	src, err := os.ReadFile("../../internal/buildinfo/buildinfo.go")
	require.NoError(t, err)
	for _, v := range []string{"revision", "vcsTime", "modified"} {
		require.Contains(t, buildLine, "internal/buildinfo."+v+"=", "the Dockerfile sets buildinfo.%s", v)
		require.Regexp(t, `(?m)^\s+`+v+`\s+string$`, string(src), "buildinfo has the variable %s", v)
	}

	require.True(t, strings.HasPrefix(runtime.base, "gcr.io/distroless/static"), runtime.base)
	require.True(t, strings.HasSuffix(runtime.base, ":nonroot"), runtime.base)
	require.Contains(t, runtime.lines, "COPY --from=build /out/autopatch /autopatch")
	require.Contains(t, runtime.lines, "USER nonroot:nonroot")
	hc := runtime.lines[idx(runtime, "HEALTHCHECK")]
	require.Contains(t, hc, `CMD ["/autopatch", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"]`)
	require.Contains(t, runtime.lines, `ENTRYPOINT ["/autopatch"]`)

	ignore, err := os.ReadFile("../../.dockerignore")
	require.NoError(t, err)
	for _, p := range []string{".git", "secrets", ".env", ".run", "bin"} {
		require.Contains(t, strings.Fields(string(ignore)), p, ".dockerignore keeps %s out of the build context", p)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
