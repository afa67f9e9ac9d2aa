#!/usr/bin/env bash
# Makes sure a Chromium is installed for the console's browser test
# (handlers/ui/browser_test.go), as integrations/scom/check.sh does for
# xmllint: when none is on PATH and we are root with apt-get (CI, the dev
# container), install Debian's `chromium`; otherwise say what to install and
# fail. The browser test fails, never skips, without a browser.
set -euo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$name" >/dev/null 2>&1; then
    exit 0
  fi
done
if [ -n "${AUTOPATCH_CHROMIUM:-}" ] && [ -x "${AUTOPATCH_CHROMIUM}" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium.sh: installing Chromium (Debian package chromium) for the console's browser test" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null
  command -v chromium >/dev/null 2>&1 && exit 0
  echo "chromium.sh: apt-get install chromium did not give a chromium on PATH" >&2
  exit 1
fi
echo "chromium.sh: Chromium is missing (Debian/Ubuntu: apt-get install chromium), or set AUTOPATCH_CHROMIUM to a Chrome or Chromium binary" >&2
exit 1
