package pscheck_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/winrm/pscheck"
)

// testTable is a small connector table in the shape connectors write.
const testTable = `
cmdlets:
  - name: Get-CMThing
    source: https://learn.microsoft.com/example/get-cmthing (test fixture)
    parameters:
      - {name: Name, type: String, aliases: [ThingName]}
      - {name: Id, type: String}
      - {name: Kind, type: ThingKind, values: [Device, User], enum: true}
      - {name: Mode, type: String, values: [Fast, Slow]}
      - {name: DisableWildcardHandling, type: SwitchParameter, switch: true}
    parameter_sets:
      - name: ByName
        parameters: [Name, Kind, Mode, DisableWildcardHandling]
        positional: [Name]
      - name: ById
        parameters: [Id, Kind, Mode]
  - name: Set-CMThing
    source: https://learn.microsoft.com/example/set-cmthing (test fixture)
    should_process: true
    parameters:
      - {name: InputObject, type: IResultObject}
      - {name: Enable, type: Boolean}
      - {name: Force, type: SwitchParameter, switch: true}
`

func TestCheck(t *testing.T) {
	t.Parallel()

	table, err := pscheck.Load([]byte(testTable))
	require.NoError(t, err)

	notRecognized := func(name string) string {
		return "The term '" + name + "' is not recognized as the name of a cmdlet, function, script file, or operable program. " +
			"Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
	}

	tests := []struct {
		name   string
		script string
		want   string // "" = no problem; else the first problem's message
		line   int
	}{
		{"Named", "$x = Get-CMThing -Name $n -Kind Device -DisableWildcardHandling", "", 0},
		{"Alias", "Get-CMThing -ThingName 'a'", "", 0},
		{"CaseInsensitive", "get-cmthing -name 'a' -kind device", "", 0},
		{"ColonValue", "Set-CMThing -InputObject $o -Enable:$false -Force:$true", "", 0},
		{"Positional", "Get-CMThing 'a' -Kind User", "", 0},
		{"CommonParameters", "Get-CMThing -Name a -ErrorAction SilentlyContinue -Verbose", "", 0},
		{"ShouldProcess", "Set-CMThing -InputObject $o -WhatIf", "", 0},
		{"NestedInParens", "if ($null -eq (Get-CMThing -Name $n)) { throw 'x' }", "", 0},
		{"Pipeline", "Get-CMThing -Name $n |\n    Where-Object { $_.Name -ceq $n } |\n    Select-Object -First 1", "", 0},
		{"ForeachIn", "foreach ($t in Get-CMThing -Id 'x') { $null = $t }", "", 0},
		{"Splat", "$p = @{\n    Name = $n\n    Kind = 'Device'\n}\nGet-CMThing @p", "", 0},
		{"Subexpression", "$s = \"n: $(Get-CMThing -Name a)\"", "", 0},
		{"HereString", "$s = @'\nGet-Nothing -Bogus\n'@\nGet-CMThing -Name a", "", 0},
		{"Comments", "# Get-Nothing -Bogus\n<# Get-Nothing\n -Bogus #>\nGet-CMThing -Name a", "", 0},
		{"OwnFunction", "function Find-Ap([string]$Name) { Get-CMThing -Name $Name }\nFind-Ap -Name 'x'\nFind-Ap 'x'", "", 0},
		{"Redirections", "Get-CMThing -Name a 2>&1 | Select-Object -First 1\nGet-CMThing -Name b 2>$null\nGet-CMThing -Name c > $null", "", 0},
		{"Switch", "switch ($x) {\n    'a' { Get-CMThing -Name a }\n    default { Get-CMThing -Id b }\n}", "", 0},
		{"TryCatch", "try {\n    Get-CMThing -Name a\n} catch [System.Exception] {\n    throw\n} finally {\n    $null = 1\n}", "", 0},
		{"CallOperator", "& $block -Anything 1 (Get-CMThing -Name a)", "", 0},
		{"Increment", "$i++\nGet-CMThing -Name a", "", 0},
		{"FormatOperator", "$s = '{0}-{1}' -f $a, (Get-CMThing -Name a)", "", 0},
		{"OwnFunctionParamBlock", "function Find-Ap {\n param([string]$Name)\n $Name }\nFind-Ap -Name 'x'", "", 0},

		{"UnknownCmdlet", "$a = 1\nGet-CMNothing -Name a", notRecognized("Get-CMNothing"), 2},
		{"UnknownParameter", "Get-CMThing -Name a -DisableWildcards", "A parameter cannot be found that matches parameter name 'DisableWildcards'.", 1},
		{"PrefixRefused", "Get-CMThing -Na a", "A parameter cannot be found that matches parameter name 'Na'.", 1},
		{"WhatIfWithoutShouldProcess", "Get-CMThing -Name a -WhatIf", "A parameter cannot be found that matches parameter name 'WhatIf'.", 1},
		{"NoSingleSet", "Get-CMThing -Name a -Id b", "Parameter set cannot be resolved using the specified named parameters.", 1},
		{"BadEnum", "Get-CMThing -Name a -Kind Server", "Cannot bind parameter 'Kind'. Cannot convert value \"Server\" to type \"ThingKind\". " +
			"Error: \"Unable to match the identifier name Server to a valid enumerator name. Specify one of the following enumerator names and try again:\nDevice, User\"", 1},
		{"BadValidateSet", "Get-CMThing -Name a -Mode 'Quick'", "Cannot validate argument on parameter 'Mode'. The argument \"Quick\" does not belong to the set \"Fast,Slow\" " +
			"specified by the ValidateSet attribute. Supply an argument that is in the set and then try the command again.", 1},
		{"BadCommonEnum", "Get-CMThing -Name a -ErrorAction Quietly", "Cannot bind parameter 'ErrorAction'. Cannot convert value \"Quietly\" to type \"ActionPreference\". " +
			"Error: \"Unable to match the identifier name Quietly to a valid enumerator name. Specify one of the following enumerator names and try again:\n" +
			"Break, Suspend, Ignore, Inquire, Continue, Stop, SilentlyContinue\"", 1},
		{"MissingArgument", "Get-CMThing -Name", "Missing an argument for parameter 'Name'. Specify a parameter of type 'String' and try again.", 1},
		{"Twice", "Get-CMThing -Name a -ThingName b", "Cannot bind parameter because parameter 'Name' is specified more than once. " +
			"To provide multiple values to parameters that can accept multiple values, use the array syntax. For example, \"-parameter value1,value2,value3\".", 1},
		{"ExtraPositional", "Get-CMThing 'a' 'b'", "A positional parameter cannot be found that accepts argument ''b''.", 1},
		{"SplatUnknownKey", "$p = @{ Name = $n; Colour = 'red' }\nGet-CMThing @p", "A parameter cannot be found that matches parameter name 'Colour'.", 2},
		{"SplatBadEnum", "$p = @{ Name = $n; Kind = 'Server' }\nGet-CMThing @p", "Cannot bind parameter 'Kind'.", 2},
		{"BareWordValueIsACommand", "$p = @{ Kind = Device }\nGet-CMThing @p", notRecognized("Device"), 1},
		{"InsideScriptBlock", "Get-CMThing -Name a | Where-Object { Get-CMNothing }", notRecognized("Get-CMNothing"), 1},
		{"InsideSubexpression", "$s = \"$(Get-CMThing -Bogus 1)\"", "A parameter cannot be found that matches parameter name 'Bogus'.", 1},
		{"OwnFunctionUnknownParameter", "function Find-Ap([string]$Name) { $Name }\nFind-Ap -Nme 'x'", "A parameter cannot be found that matches parameter name 'Nme'.", 2},
		{"InsideSwitchDefault", "switch ($x) {\n    default { Get-CMThing -Colour b }\n}", "A parameter cannot be found that matches parameter name 'Colour'.", 2},
		{"InsideCallArguments", "& $block (Get-CMNothing)", notRecognized("Get-CMNothing"), 1},
		{"AfterRedirection", "Get-CMThing -Name a 2>$null -Bogus", "A parameter cannot be found that matches parameter name 'Bogus'.", 1},
		{"UnterminatedString", "Get-CMThing -Name 'a", "The string is missing the terminator: '.", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			problems := table.Check(tt.script)
			if tt.want == "" {
				require.Empty(t, problems)
				return
			}
			require.NotEmpty(t, problems)
			require.True(t, strings.HasPrefix(problems[0].Message, tt.want), "got %q", problems[0].Message)
			require.Equal(t, tt.line, problems[0].Line)
		})
	}
}

// TestCheckWrongTemplate feeds one deliberately wrong template and expects a
// refusal for each thing wrong in it, in source order.
func TestCheckWrongTemplate(t *testing.T) {
	t.Parallel()

	table, err := pscheck.Load([]byte(testTable))
	require.NoError(t, err)
	const wrong = `param($Data)
$ErrorActionPreference = 'Stop'
$thing = Get-CMThing -Name ([string]$Data.name) -DisableWildcardHandling -Undocumented
Invoke-CMMagic -Name 'x'
$null = Get-CMThing -Id 'x' -Kind Printer
ConvertTo-Json -InputObject $thing -Compress
`
	problems := table.Check(wrong)
	require.Len(t, problems, 3)
	require.Equal(t, 3, problems[0].Line)
	require.Equal(t, "A parameter cannot be found that matches parameter name 'Undocumented'.", problems[0].Message)
	require.Equal(t, "NamedParameterNotFound", problems[0].ErrorID)
	require.Equal(t, 4, problems[1].Line)
	require.Contains(t, problems[1].Message, "The term 'Invoke-CMMagic' is not recognized")
	require.Equal(t, 5, problems[2].Line)
	require.Contains(t, problems[2].Message, `Cannot convert value "Printer" to type "ThingKind"`)
}

func TestLoad(t *testing.T) {
	t.Parallel()

	t.Run("Builtins", func(t *testing.T) {
		t.Parallel()
		table, err := pscheck.Load()
		require.NoError(t, err)
		cmdlets, sets := table.BuiltinCounts()
		require.GreaterOrEqual(t, cmdlets, 15)
		require.GreaterOrEqual(t, sets, cmdlets)
		n, _ := table.Counts()
		require.Zero(t, n)
	})
	t.Run("Counts", func(t *testing.T) {
		t.Parallel()
		table, err := pscheck.Load([]byte(testTable))
		require.NoError(t, err)
		cmdlets, sets := table.Counts()
		require.Equal(t, 2, cmdlets)
		require.Equal(t, 3, sets)
	})
	for name, doc := range map[string]string{
		"NoSource":     "cmdlets:\n  - name: Get-X\n    parameters: [{name: A}]\n",
		"UnknownInSet": "cmdlets:\n  - name: Get-X\n    source: https://x\n    parameters: [{name: A}]\n    parameter_sets: [{name: S, parameters: [B]}]\n",
		"UnknownField": "cmdlets:\n  - name: Get-X\n    source: https://x\n    colour: red\n",
		"Twice":        "cmdlets:\n  - {name: Get-X, source: 'https://x'}\n  - {name: get-x, source: 'https://x'}\n",
		"BuiltinTwice": "cmdlets:\n  - {name: Get-Module, source: 'https://x'}\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := pscheck.Load([]byte(doc))
			require.Error(t, err)
		})
	}
}
