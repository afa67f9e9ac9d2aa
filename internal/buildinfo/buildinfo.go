// Package buildinfo describes the running binary from the information the Go
// toolchain embeds in it (runtime/debug.ReadBuildInfo): the module version,
// the VCS revision and time, and the Go version. `autopatch version`, the
// start-up log line and the autopatch_build_info gauge all show it, so an
// operator can tell which commit a replica runs without a build script.
package buildinfo

import (
	"fmt"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info is what the binary knows about its own build. A field the toolchain
// did not record (a `go run`, a build outside a VCS checkout, -buildvcs=false)
// is "unknown", never empty.
type Info struct {
	// Version is the main module's version: "(devel)" for a build from a
	// checkout, a tag such as v1.4.0 for `go install …@v1.4.0`.
	Version string `json:"version"`
	// Revision is the VCS commit; Modified says the work tree had changes.
	Revision string `json:"revision"`
	Time     string `json:"time"`
	Modified bool   `json:"modified"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
}

const unknown = "unknown"

// Set with -ldflags "-X …" by `make build` and the Dockerfile, for builds
// whose toolchain cannot see the VCS: a git worktree (cmd/go looks for a
// .git directory, and a worktree has a .git file), a Docker build context
// without .git, GOFLAGS=-buildvcs=false. What the toolchain recorded wins.
var (
	revision string
	vcsTime  string
	modified string
)

// Read returns the running binary's Info.
func Read() Info {
	info := Info{Version: unknown, Revision: unknown, Time: unknown, GoVersion: unknown}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info = FromBuildInfo(bi)
	}
	return info.withLinkerValues(revision, vcsTime, modified)
}

// withLinkerValues fills the VCS fields the build info lacks from the
// values given to the linker.
func (i Info) withLinkerValues(rev, t, mod string) Info {
	if i.Revision == unknown && rev != "" {
		i.Revision = rev
		i.Modified = mod == "true"
	}
	if i.Time == unknown && t != "" {
		i.Time = t
	}
	return i
}

// FromBuildInfo extracts Info from the toolchain's build information.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, Revision: unknown, Time: unknown, GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if info.Version == "" {
		info.Version = unknown
	}
	if info.GoVersion == "" {
		info.GoVersion = unknown
	}
	return info
}

// ShortRevision is the revision's first 12 characters, with "+dirty" when
// the work tree was modified.
func (i Info) ShortRevision() string {
	r := i.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if i.Modified {
		r += "+dirty"
	}
	return r
}

// String is the one line `autopatch version` prints.
func (i Info) String() string {
	return fmt.Sprintf("autopatch %s (revision %s, %s, built with %s)", i.Version, i.ShortRevision(), i.Time, i.GoVersion)
}

// Attrs are the slog attributes of the start-up line.
func (i Info) Attrs() []any {
	return []any{"version", i.Version, "revision", i.ShortRevision(), "vcs_time", i.Time, "go", i.GoVersion}
}

// Register adds autopatch_build_info to reg: a gauge that is always 1,
// labelled with the version, revision and Go version, as Prometheus
// exporters conventionally expose their build.
func (i Info) Register(reg prometheus.Registerer) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "autopatch_build_info",
		Help: "Always 1; the labels say which build this replica runs (module version, VCS revision, Go version).",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(i.Version, i.ShortRevision(), i.GoVersion).Set(1)
	reg.MustRegister(g)
}
