#!/usr/bin/env bash
# Checks the SCOM management pack without SCOM: well-formed XML (xmllint), then
# the structure an import would trip over, without the product's XSDs:
#   - manifest: identity, a.b.c.d versions, every reference with a 16-hex-digit key token;
#   - every alias used (Alias!Element) is a declared reference, every declared one used;
#   - every element named without an alias ($MPElement[Name="X"]$, ElementID) is defined;
#   - every rule has a category, a data source and a write action, and a display string;
#   - every NT event log data source (Microsoft.Windows.EventProvider) has the
#     configuration its schema requires (LogName, Expression) and a ComputerName,
#     and every GenerateAlertForType write action names the type and key of the
#     object it raises the alert on;
#   - every alert message string resource has a display string with a description;
#   - top-level sections in the order the schema wants.
# Usage: integrations/scom/check.sh [FILE]   (default: Autopatch.Alerts.xml beside it)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mp=${1:-$here/Autopatch.Alerts.xml}

if ! command -v xmllint >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "check.sh: installing xmllint (libxml2-utils)" >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq libxml2-utils >/dev/null
  else
    echo "check.sh: xmllint is missing (Debian/Ubuntu: apt-get install libxml2-utils)" >&2
    exit 1
  fi
fi

xmllint --noout "$mp"

fail=0
problem() {
  echo "check.sh: $mp: $*" >&2
  fail=1
}
xpath() { xmllint --xpath "$1" "$mp" 2>/dev/null || true; }
# values XPATH: the values of the attributes or text nodes XPATH selects, one a line.
values() {
  xmllint --xpath "$1" "$mp" 2>/dev/null | sed -E 's/^ *[A-Za-z]+="([^"]*)"$/\1/' || true
}
must() {
  [ "$(xpath "boolean($2)")" = "true" ] || problem "$1"
}

must "the root must be <ManagementPack SchemaVersion=\"2.0\">" "/ManagementPack[@SchemaVersion='2.0']"
must "the manifest needs an identity (ID, Version) and a name" \
  "/ManagementPack/Manifest/Identity/ID and /ManagementPack/Manifest/Identity/Version and /ManagementPack/Manifest/Name"

# Section order: Manifest, TypeDefinitions, Monitoring, Templates, PresentationTypes,
# Presentation, Reporting, LanguagePacks, Resources.
order="Manifest TypeDefinitions Monitoring Templates PresentationTypes Presentation Reporting LanguagePacks Resources"
last=-1
for section in $(xpath "/ManagementPack/*" | grep -oE '^<[A-Za-z]+|><[A-Za-z]+' | tr -d '<>'); do
  pos=-1 i=0
  for known in $order; do
    [ "$known" = "$section" ] && pos=$i
    i=$((i + 1))
  done
  if [ "$pos" -lt 0 ]; then
    problem "unknown section <$section>"
  elif [ "$pos" -le "$last" ]; then
    problem "section <$section> is out of order (want: $order)"
  fi
  last=$pos
done

version_re='^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$'
for v in $(values "/ManagementPack/Manifest/Identity/Version/text()") $(values "//Manifest/References/Reference/Version/text()"); do
  [[ $v =~ $version_re ]] || problem "version '$v' is not a.b.c.d"
done

declared=$(values "//Manifest/References/Reference/@Alias" | sort -u)
n_refs=$(xpath "count(//Manifest/References/Reference)")
n_tokens=$(xpath "count(//Manifest/References/Reference[string-length(PublicKeyToken)=16 and translate(PublicKeyToken,'0123456789abcdef','')=''])")
[ "$n_refs" = "$n_tokens" ] || problem "every reference needs a 16-hex-digit PublicKeyToken"
[ "$(printf '%s\n' "$declared" | grep -c .)" = "$n_refs" ] || problem "reference aliases must be unique"

used=$(grep -oE '(TypeID|Target)="[A-Za-z][A-Za-z0-9]*!|Name="[A-Za-z][A-Za-z0-9]*!' "$mp" |
  sed -E 's/.*"([A-Za-z0-9]+)!/\1/' | sort -u)
for alias in $used; do
  printf '%s\n' "$declared" | grep -qx "$alias" || problem "alias '$alias!' is used but no reference declares it"
done
for alias in $declared; do
  printf '%s\n' "$used" | grep -qx "$alias" || problem "reference alias '$alias' is declared but never used"
done

ids=$( (values "/ManagementPack/Manifest/Identity/ID/text()"; values "//*[@ID and not(self::LanguagePack) and not(ancestor::Rule and not(self::Rule))]/@ID") | sort)
dups=$(printf '%s\n' "$ids" | uniq -d)
[ -z "$dups" ] || problem "element IDs defined twice: $dups"
local_refs=$( (grep -oE '\$MPElement\[Name="[^"!]+"\]' "$mp" | sed -E 's/.*Name="([^"]+)".*/\1/'; values "//@ElementID") | sort -u)
for id in $local_refs; do
  printf '%s\n' "$ids" | grep -qx "$id" || problem "'$id' is referenced but not defined in this management pack"
done

for rule in $(values "//Monitoring/Rules/Rule/@ID"); do
  r="//Monitoring/Rules/Rule[@ID='$rule']"
  must "rule $rule needs a Category, a DataSource and a WriteAction" \
    "$r/Category and $r/DataSources/DataSource[@ID and @TypeID] and $r/WriteActions/WriteAction[@ID and @TypeID]"
  must "rule $rule needs a Target" "$r[@Target != '']"
  must "rule $rule needs a display string" "//LanguagePack[@IsDefault='true']/DisplayStrings/DisplayString[@ElementID='$rule']/Name"
  ev="$r/DataSources/DataSource[substring-after(@TypeID, '!') = 'Microsoft.Windows.EventProvider']"
  if [ "$(xpath "count($ev)")" != "0" ]; then
    must "rule $rule: Microsoft.Windows.EventProvider needs ComputerName, LogName and an Expression" \
      "$ev/ComputerName != '' and $ev/LogName != '' and $ev/Expression/*"
  fi
  gaft="$r/WriteActions/WriteAction[substring-after(@TypeID, '!') = 'System.Health.GenerateAlertForType']"
  if [ "$(xpath "count($gaft)")" != "0" ]; then
    must "rule $rule: GenerateAlertForType needs Priority, Severity, ManagedEntityTypeId and KeyProperties" \
      "$gaft/Priority and $gaft/Severity and $gaft/ManagedEntityTypeId != '' and $gaft/KeyProperties/KeyProperty/PropertyId and $gaft/KeyProperties/KeyProperty/Value"
  fi
done
for res in $(values "//Presentation/StringResources/StringResource/@ID"); do
  must "string resource $res needs a display string with a name and a description" \
    "//LanguagePack[@IsDefault='true']/DisplayStrings/DisplayString[@ElementID='$res']/Name and //LanguagePack[@IsDefault='true']/DisplayStrings/DisplayString[@ElementID='$res']/Description"
done
must "exactly one default language pack" "count(//LanguagePacks/LanguagePack[@IsDefault='true']) = 1"

if [ "$fail" -ne 0 ]; then
  exit 1
fi
echo "check.sh: $(basename "$mp"): well-formed, structure ok ($(xpath "count(//Monitoring/Rules/Rule)") rules)"
