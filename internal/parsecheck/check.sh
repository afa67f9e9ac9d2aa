#!/usr/bin/env bash
# Parses every PowerShell template (sccm.Templates() and scom.Templates(), taken
# from the code at run time) with the tree-sitter PowerShell grammar, and every
# ServiceNow script (integrations/servicenow/*.js) with acorn. A syntax error
# prints FILE:LINE:COL and fails.
#
# The parsers are npm packages pinned by package.json and package-lock.json
# beside this script; they are installed with `npm ci` into .cache/parsers
# (gitignored) the first time and again only when the lock file changes.
#
# Usage: internal/parsecheck/check.sh            check the repository
#        internal/parsecheck/check.sh --selftest also prove that a broken
#                                                template and script fail it
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=$root/.cache/parsers
GO=${GO:-go}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "check.sh: node and npm are needed (Debian: apt-get install nodejs npm; node 20 or later)" >&2
  exit 1
fi

# Install when the lock file differs from the one installed. The stamp is
# the lock file itself, copied last, so an interrupted install is redone.
if ! cmp -s "$here/package-lock.json" "$cache/installed.lock"; then
  echo "check.sh: installing the parsers into .cache/parsers (npm ci)" >&2
  mkdir -p "$cache"
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  # --ignore-scripts: only JavaScript and .wasm files are used; the grammar's
  # install script would try to build a native addon nobody loads.
  (cd "$cache" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null >&2)
  cp "$here/package-lock.json" "$cache/installed.lock"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --liftoff-only: V8 otherwise spends about 7 s optimising the 1 MB grammar
# module in the background before node may exit; the baseline compiler parses
# all templates in well under a second.
check() { node --liftoff-only "$here/check.cjs" "$cache/node_modules" "$@"; }

"$GO" run ./internal/parsecheck/dump "$work/templates" >/dev/null
# Every script the ServiceNow update set embeds (script fields and
# conditions), as the generator writes them: the file checked in must be
# what the scripts generate (go test ./internal/updateset), so these are its
# scripts.
"$GO" run ./internal/updateset/gen --dir "$root/integrations/servicenow" --out /dev/null --scripts "$work/updateset" 2>/dev/null
# Paths relative to the repository (templates: their names), so errors read
# sccm.create_deployments:42:7 or integrations/servicenow/x.js:3:7.
(cd "$work/templates" && check --powershell * --javascript "$root"/integrations/servicenow/*.js "$work"/updateset/*.js) |
  sed -e "s#^$root/##" -e "s#^$work/updateset/#autopatch.update_set.xml: #"

if [ "${1:-}" = "--selftest" ]; then
  # A template with an unclosed block and an ES5 script using let: both must
  # fail, naming the file and the line of the fault.
  mkdir -p "$work/broken"
  printf 'param($Data)\n$x = 1\nforeach ($d in $Data.devices) {\n    $x++\n' >"$work/broken/sccm.broken_template"
  printf 'var a = 1;\nfunction f() {\n  let b = 2;\n  return b;\n}\n' >"$work/broken/broken_script.js"
  set +e
  out=$(cd "$work/broken" && check --powershell sccm.broken_template --javascript broken_script.js 2>&1)
  code=$?
  set -e
  fail=0
  [ "$code" -eq 1 ] || { echo "check.sh: selftest: exit $code, want 1" >&2; fail=1; }
  grep -qE '^sccm\.broken_template:[0-9]+:[0-9]+: ' <<<"$out" || { echo "check.sh: selftest: the broken template is not named" >&2; fail=1; }
  grep -qE '^broken_script\.js:3:[0-9]+: ' <<<"$out" || { echo "check.sh: selftest: the broken script is not named at line 3" >&2; fail=1; }
  if [ "$fail" -ne 0 ]; then
    echo "$out" >&2
    exit 1
  fi
  echo "check.sh: selftest: broken inputs fail as they should:" >&2
  sed 's/^/    /' <<<"$out" >&2
fi
