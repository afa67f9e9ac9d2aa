package sccm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
)

// hostileNames are names that would break, or take over, a script that
// spliced them into its text. They must travel as data and come out of the
// simulator exactly as they went in.
var hostileNames = []string{
	"O'Brien",
	`"double quoted"`,
	`'; Remove-Item -Path C:\ -Recurse -Force; '`,
	`"; Stop-Computer -Force; "`,
	`$(Remove-Item C:\Windows -Recurse)`,
	`$env:COMPUTERNAME`,
	"${Data}",
	"`whoami`",
	"tick`nnewline`0",
	"semi;colon",
	"pipe|Out-File C:\\pwned.txt",
	"amp && calc.exe",
	"line one\nline two",
	"crlf\r\nInvoke-Expression 'x'",
	"<# block comment #>",
	"# line comment",
	"‘curly single’",
	"“curly double”",
	"@(1,2,3)",
	"@{a=1}",
	"* wildcard",
	"[abc] bracket",
	"question?",
	"100% sure",
	"%s %d %v %[1]q",
	"{0} {1}",
	`\\server\share$`,
	"\ttab\tseparated\t",
	"  padded  ",
	"Ünïcödé ☃ 日本語",
	"😀 emoji",
	"\u202Eright-to-left override",
	"\u2028line separator",
	"nul\x00byte",
	"</S></Objs><Objs><S>xml",
	"]]> cdata end",
	"&amp; entity &lt;",
	"-Force",
	"unbalanced ) ( }",
	strings.Repeat("long-", 60) + "end", // 303 characters
}

func TestHostileNamesComeOutExactly(t *testing.T) {
	t.Parallel()
	require.GreaterOrEqual(t, len(hostileNames), 30)
	b := setup(t, setupOpts{})
	ctx := t.Context()
	n := len(hostileNames)

	// The names exist in SCCM (an admin created them); autopatch only passes them on.
	b.seed(t, hostileNames, hostileNames, nil)
	for _, name := range hostileNames {
		_, err := b.site.AddDevice(name, sccmsim.Outcome{Kind: sccmsim.OutcomeSuccess})
		require.NoError(t, err)
	}

	res, err := b.client.ResolveDevices(ctx, hostileNames)
	require.NoError(t, err)
	require.Empty(t, res.Unknown)
	require.Len(t, res.ResourceIDs, n)
	for _, name := range hostileNames {
		require.Containsf(t, res.ResourceIDs, name, "resolved %q", name)
	}

	// Device i goes to collection i+1.
	moves := make([]sccm.Move, n)
	for i, name := range hostileNames {
		moves[i] = sccm.Move{Device: name, Collection: hostileNames[(i+1)%n]}
	}
	results, err := b.client.SetMembership(ctx, moves, hostileNames)
	require.NoError(t, err)
	for i, r := range results {
		require.Equal(t, hostileNames[i], r.Device)
		require.Equal(t, sccm.Moved, r.Outcome)
	}
	for i, name := range hostileNames {
		require.Equal(t, []string{hostileNames[(i+n-1)%n]}, b.collection(t, name).Members, "collection %q", name)
	}

	// One deployment per name: the deterministic name of (name, name, name),
	// plus the raw name itself where it fits.
	start := time.Date(2026, 12, 13, 2, 0, 0, 0, time.UTC)
	var specs []sccm.DeploymentSpec
	for _, name := range hostileNames {
		specs = append(specs, spec(sccm.DeploymentName(name, name, name), name, name, start))
		if sccm.NameLength(name) <= sccm.MaxNameLength {
			specs = append(specs, spec(name, name, name, start))
		}
	}
	created, err := b.client.CreateDeployments(ctx, specs)
	require.NoError(t, err)
	require.Len(t, created, len(specs))
	names := make([]string, len(specs))
	for i, s := range specs {
		require.Equal(t, s.Name, created[i].Name)
		names[i] = s.Name
		st := b.deployment(t, s.Name)
		require.Equal(t, s.Collection, st.Collection)
		require.Equal(t, s.UpdateGroup, st.UpdateGroup)
	}

	enabled, err := b.client.SetEnabled(ctx, names, true)
	require.NoError(t, err)
	for i, e := range enabled {
		require.Equal(t, names[i], e.Name)
	}
	require.NoError(t, b.client.RefreshPolicy(ctx, hostileNames))

	rep, err := b.client.DeploymentStatus(ctx, names)
	require.NoError(t, err)
	require.Empty(t, rep.Missing)
	seen := map[string]bool{}
	for _, d := range rep.Devices {
		require.Equal(t, sccm.StatusSuccess, d.Type, "%q on %q", d.Device, d.Deployment)
		seen[d.Device] = true
	}
	require.Len(t, seen, n, "every hostile device reported under its exact name")
	for _, name := range hostileNames {
		require.True(t, seen[name], "%q", name)
	}

	deleted, err := b.client.DeleteDeployments(ctx, names)
	require.NoError(t, err)
	for i, d := range deleted {
		require.Equal(t, names[i], d.Name)
		require.True(t, d.Deleted, "%q", d.Name)
	}

	// One WinRM call per operation, whatever the names held.
	require.Equal(t, 7, b.site.Calls(), "%v", b.site.CallsByTemplate())
}
