package sccm_test

import (
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
)

func TestDeploymentName(t *testing.T) {
	t.Parallel()

	long := strings.Repeat("x", 300)
	emoji := strings.Repeat("😀", 200) // each is a surrogate pair: 2 UTF-16 units
	tests := []struct {
		name                          string
		change, schedule, updateGroup string
		wantExact                     string // when not trimmed
		wantPrefix                    string // when trimmed
	}{
		{"Plain", "CHG0031234", "DB-SAT-0200", "2026-12 Servers", "AP-CHG0031234-DB-SAT-0200-2026-12 Servers", ""},
		{"ExactlyAtTheLimit", "C", "S", strings.Repeat("g", sccm.MaxNameLength-len("AP-C-S-")), "AP-C-S-" + strings.Repeat("g", sccm.MaxNameLength-len("AP-C-S-")), ""},
		{"LongGroup", "CHG1", "SCHED", long, "", "AP-CHG1-SCHED-xxxx"},
		{"SurrogatePairs", "CHG1", "SCHED", emoji, "", "AP-CHG1-SCHED-😀😀"},
		{"Accents", "CHG1", "SCHÉD", strings.Repeat("é", 300), "", "AP-CHG1-SCHÉD-éé"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := sccm.DeploymentName(tt.change, tt.schedule, tt.updateGroup)
			require.True(t, utf8.ValidString(got), "never cuts inside a character")
			units := len(utf16.Encode([]rune(got)))
			require.LessOrEqual(t, units, sccm.MaxNameLength)
			require.Equal(t, units, sccm.NameLength(got))
			require.Equal(t, got, sccm.DeploymentName(tt.change, tt.schedule, tt.updateGroup), "deterministic")
			if tt.wantExact != "" {
				require.Equal(t, tt.wantExact, got)
				return
			}
			require.True(t, strings.HasPrefix(got, tt.wantPrefix), got)
			require.Regexp(t, `~[0-9a-f]{10}$`, got)
			require.GreaterOrEqual(t, units, sccm.MaxNameLength-1, "uses the room it has (a pair may leave one unit)")
		})
	}
}

func TestDeploymentNameTrimmedStaysUnique(t *testing.T) {
	t.Parallel()

	base := strings.Repeat("g", 400)
	a := sccm.DeploymentName("CHG1", "S", base+"A")
	b := sccm.DeploymentName("CHG1", "S", base+"B")
	require.NotEqual(t, a, b, "names that differ only past the cut differ in the hash")
	require.Equal(t, a[:240], b[:240])
}
