#!/usr/bin/env bash
# `make run`: local setup, the SMSC simulator wired as operator "mci", then the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
export PAYAM_CONFIG="${PAYAM_CONFIG:-config/payam.dev.toml}"
.venv/bin/payam init
mkdir -p var
.venv/bin/payam smsc-sim --port 2775 --http-port 2776 --id-format hex --dlr-delay 1 \
    > var/smsc-sim.log 2>&1 &
sim=$!
trap 'kill "$sim" 2>/dev/null || true' EXIT
scripts/next-steps.sh
.venv/bin/payam serve
