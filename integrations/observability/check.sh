#!/usr/bin/env bash
# Checks the Prometheus alerting rules with promtool: syntax (check rules)
# and behaviour (test rules, alerts.test.yml). promtool comes from the
# machine's Debian packages (package prometheus) when it is missing; as root
# it is installed here, otherwise the command to run is printed.
# The Grafana dashboard and the metric names are checked by
# go test ./cmd/autopatch -run Observability.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "check.sh: installing promtool (Debian package prometheus)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends prometheus </dev/null >/dev/null 2>&1 ||
      { apt-get update </dev/null >/dev/null 2>&1 && apt-get install -y --no-install-recommends prometheus </dev/null >/dev/null; }
    # The package's post-install may start a server where an init system
    # runs; the check needs only promtool.
  else
    echo "check.sh: promtool is needed: apt-get install prometheus (Debian/Ubuntu), or go install github.com/prometheus/prometheus/cmd/promtool@latest" >&2
    exit 1
  fi
fi

cd "$here"
promtool check rules alerts.rules.yml
promtool test rules alerts.test.yml
