package scom_test

import (
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/scom"
)

// hostile are values that would break, or take over, a script that spliced
// them into its text, or a criteria string that did not quote them. They must
// travel as data and come out of the simulator exactly as they went in. (NUL
// and other characters XML cannot carry are refused or replaced, see
// TestClientRefusesBadInputWithoutACall.)
var hostile = []string{
	"O'Brien",
	"''",
	`"double quoted"`,
	`'; Remove-Item -Path C:\ -Recurse -Force; '`,
	`"; Stop-Computer -Force; "`,
	`x' OR CustomField1 LIKE '%`,
	`') OR (1=1`,
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
	"‘curly single’ ʼmodifierʼ",
	"“curly double”",
	"@(1,2,3)",
	"@{a=1}",
	"* wildcard",
	"[abc] bracket",
	"under_score",
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
	"</S></Objs><Objs><S>xml",
	"]]> cdata end",
	"&amp; entity &lt;",
	"$Data/Params/Param[1]$",
	"-Force",
	"unbalanced ) ( }",
	strings.Repeat("long-", 60) + "end", // 303 characters
}

func TestHostileValuesComeOutExactly(t *testing.T) {
	t.Parallel()
	require.GreaterOrEqual(t, len(hostile), 30)
	b := setup(t, setupOpts{})
	ctx := t.Context()
	n := len(hostile)

	// Each hostile value is a computer (SCOM monitors it under that name),
	// a key, a summary, a description, a change and an error code.
	for i, h := range hostile {
		require.NoError(t, b.group.AddComputer(h, ""), "%d", i)
	}
	alerts := make([]scom.Alert, n)
	for i, h := range hostile {
		alerts[i] = scom.Alert{
			Key: h, Device: h, Summary: hostile[(i+1)%n], Description: hostile[(i+2)%n],
			Change: hostile[(i+3)%n], ErrorCode: hostile[(i+4)%n], Severity: scom.SeverityWarning,
		}
	}
	raised, err := b.client.RaiseAlerts(ctx, alerts)
	require.NoError(t, err)
	require.Len(t, raised, n)
	for i, r := range raised {
		require.Equal(t, hostile[i], r.Key)
		require.Equal(t, hostile[i], r.Device)
		require.Equal(t, hostile[i], r.Computer)
		require.Equalf(t, scom.Raised, r.Outcome, "%q: %s", hostile[i], r.Message)

		a := b.alert(t, r.AlertID)
		require.Equal(t, scom.StoredKey(hostile[i]), a.Key, "%q", hostile[i])
		if len(utf16.Encode([]rune(hostile[i]))) <= scom.MaxKeyLength {
			require.Equal(t, hostile[i], a.Key, "fits CustomField1 as it is")
		}
		require.Equal(t, hostile[i], a.Device)
		require.Equal(t, hostile[i], a.Computer)
		require.Equal(t, hostile[(i+1)%n]+"\n\n"+hostile[(i+2)%n], a.Description)
		require.Equal(t, hostile[(i+3)%n], a.Change)
		require.Equal(t, hostile[(i+4)%n], a.ErrorCode)
	}

	// Raising again finds every one of them by its key: the criteria quoting held.
	again, err := b.client.RaiseAlerts(ctx, alerts)
	require.NoError(t, err)
	for i, r := range again {
		require.Equalf(t, scom.Existing, r.Outcome, "%q", hostile[i])
		require.Equal(t, raised[i].AlertID, r.AlertID)
	}

	// Link by key, with hostile ticket ids where they fit the column.
	links := make([]scom.TicketLink, n)
	tickets := make([]string, n)
	for i, h := range hostile {
		tickets[i] = hostile[(i+5)%n]
		if len(utf16.Encode([]rune(tickets[i]))) > scom.MaxTicketIDLength {
			tickets[i] = "INC0010001"
		}
		links[i] = scom.TicketLink{Key: h, TicketID: tickets[i]}
	}
	set, err := b.client.SetTicket(ctx, links)
	require.NoError(t, err)
	for i, s := range set {
		require.Equal(t, hostile[i], s.Key)
		require.Equalf(t, scom.TicketSet, s.Outcome, "%q", hostile[i])
		require.Equal(t, []string{raised[i].AlertID}, s.AlertIDs, "exactly its own alert")
		require.Equal(t, tickets[i], b.alert(t, raised[i].AlertID).TicketID)
	}

	// Close by key, with a hostile comment.
	refs := make([]scom.AlertRef, n)
	for i, h := range hostile {
		refs[i] = scom.AlertRef{Key: h}
	}
	closed, err := b.client.ResolveAlerts(ctx, refs, hostile[3])
	require.NoError(t, err)
	for i, c := range closed {
		require.Equalf(t, scom.Closed, c.Outcome, "%q", hostile[i])
		require.Equal(t, []string{raised[i].AlertID}, c.AlertIDs)
		a := b.alert(t, raised[i].AlertID)
		require.Equal(t, scom.ResolutionClosed, a.ResolutionState)
		require.Equal(t, hostile[3], a.History[len(a.History)-1].Comment)
	}

	// One WinRM call per operation, whatever the values held.
	require.Equal(t, 4, b.group.Calls(), "%v", b.group.CallsByTemplate())
	require.Len(t, b.group.Alerts(), n)
}
