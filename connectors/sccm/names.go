package sccm

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf16"
)

// MaxNameLength is the longest deployment name SCCM stores, in UTF-16 code
// units (SMS_UpdatesAssignment.AssignmentName is an nvarchar column; the SDK
// documents no width, the console and the database hold 256). The simulator
// refuses longer names and the create template checks it before creating
// anything.
const MaxNameLength = 256

// hashSuffixLength is the number of hex digits of the name's SHA-256 kept
// when a name is trimmed.
const hashSuffixLength = 10

// DeploymentName is the deterministic name of the deployment of one update
// group to one schedule's collection for one change:
// "AP-<change>-<schedule>-<update group>". A retried create finds the deployment
// it made by this name. A name longer than MaxNameLength is cut (never inside a
// character) and ends in "~" plus a hash of the full name, so two long names
// that share a prefix stay distinct.
func DeploymentName(change, schedule, updateGroup string) string {
	full := "AP-" + change + "-" + schedule + "-" + updateGroup
	if NameLength(full) <= MaxNameLength {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	suffix := "~" + hex.EncodeToString(sum[:])[:hashSuffixLength]
	budget := MaxNameLength - len(suffix)

	used := 0
	cut := 0
	for i, r := range full {
		n := utf16.RuneLen(r)
		if n < 0 { // invalid rune: encoded as U+FFFD, one unit
			n = 1
		}
		if used+n > budget {
			cut = i
			break
		}
		used += n
	}
	return full[:cut] + suffix
}

// NameLength is a name's length as SCCM (and PowerShell's String.Length)
// counts it: UTF-16 code units, the unit of MaxNameLength.
func NameLength(s string) int {
	n := 0
	for _, r := range s {
		if l := utf16.RuneLen(r); l > 0 {
			n += l
		} else {
			n++
		}
	}
	return n
}
