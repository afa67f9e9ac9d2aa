package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestFromBuildInfo(t *testing.T) {
	t.Parallel()

	info := FromBuildInfo(&debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/autopatch/autopatch", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "c8e095d0123456789abcdef0123456789abcdef0"},
			{Key: "vcs.time", Value: "2026-12-03T13:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	})
	require.Equal(t, "c8e095d01234+dirty", info.ShortRevision())
	require.Equal(t, "autopatch (devel) (revision c8e095d01234+dirty, 2026-12-03T13:00:00Z, built with go1.26.0)", info.String())

	bare := FromBuildInfo(&debug.BuildInfo{})
	require.Equal(t, Info{Version: "unknown", Revision: "unknown", Time: "unknown", GoVersion: "unknown"}, bare)
}

func TestRegister(t *testing.T) {
	t.Parallel()

	reg := prometheus.NewRegistry()
	info := Info{Version: "v1.2.3", Revision: "abc", Time: "t", GoVersion: "go1.26.0"}
	info.Register(reg)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 1)
	require.Equal(t, "autopatch_build_info", mfs[0].GetName())
	m := mfs[0].GetMetric()[0]
	require.Equal(t, 1.0, m.GetGauge().GetValue())
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	require.Equal(t, map[string]string{"version": "v1.2.3", "revision": "abc", "goversion": "go1.26.0"}, labels)
}

func TestLinkerValuesFillTheGaps(t *testing.T) {
	t.Parallel()

	bare := FromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.0"})
	got := bare.withLinkerValues("0123456789abcdef", "2026-12-03T13:00:00Z", "false")
	require.Equal(t, Info{Version: "unknown", Revision: "0123456789abcdef", Time: "2026-12-03T13:00:00Z", GoVersion: "go1.26.0"}, got)

	recorded := FromBuildInfo(&debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "aaaa"}, {Key: "vcs.time", Value: "t0"}}})
	require.Equal(t, "aaaa", recorded.withLinkerValues("bbbb", "t1", "true").Revision, "the toolchain's record wins")
}
