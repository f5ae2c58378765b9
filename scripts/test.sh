#!/usr/bin/env bash
# Runs every test of rmicro on this machine: installs what the tests need, prepares the
# loopback interface for mDNS, and runs the unit, integration, doc, UI and expansion suites.
# Everything talks to 127.0.0.1 only.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -- <args>  # extra arguments for the main `cargo test` run
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rmicro/target}"

bash scripts/setup.sh

extra=()
if [[ "${1:-}" == "--" ]]; then shift; extra=("$@"); fi

echo "== workspace tests (all features)"
cargo test --workspace --all-features --exclude rmicro-ui-tests "${extra[@]}"

echo "== googlepubsub on Google's pstest too (the machine's emulator served the run above, when it has one)"
RMICRO_PUBSUB=pstest cargo test -p rmicro-conformance --all-features --test broker_googlepubsub --test googlepubsub

echo "== macro UI and expansion tests (default features: feature-gated plugins must be refused)"
cargo test -p rmicro-ui-tests

echo "== fuzz targets: every network decoder, a short run each (scripts/fuzz.sh has the long one)"
bash scripts/fuzz.sh --time 1

echo "== examples: the quickstart runs end to end"
cargo run --quiet --bin quickstart
