#!/bin/sh
# promtool on the alert rules and their unit tests (part of `make check`). A fresh CI machine has
# only Python and pip: install Debian's prometheus (which carries promtool) when it is missing.
set -eu
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "promtool not found: installing Debian's prometheus package" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
fi
promtool check config config/prometheus/prometheus.yml
promtool check rules config/prometheus/rules/*.yml
promtool test rules config/prometheus/tests/*.yml
