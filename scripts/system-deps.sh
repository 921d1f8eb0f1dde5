#!/usr/bin/env bash
# Debian packages the test suite runs for real (no mocks): Prometheus (PromQL agreement,
# remote write), Alertmanager (SLO alerts sent to it), Chromium (UI tests, driven by
# Playwright) and ClickHouse (the ClickHouse storage backend's conformance tests start their own
# server; Debian's package is 18.16 and installs /usr/sbin/clickhouse-server).
# Installs only what is missing; needs root (CI and the dev machines run as root).
set -euo pipefail
need=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
[ -x /usr/bin/chromium ] || need+=(chromium)
{ command -v clickhouse-server || [ -x /usr/sbin/clickhouse-server ]; } >/dev/null 2>&1 \
    || need+=(clickhouse-server)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
    exit 1
fi
echo "system-deps: installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start prometheus and clickhouse services where systemd runs; tests start
# their own.
