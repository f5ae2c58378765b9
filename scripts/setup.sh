#!/usr/bin/env bash
# Installs and prepares what the tests need. Idempotent; safe to run again.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

# mDNS tests speak on the loopback interface only. Most kernels join 224.0.0.251 on `lo`
# without its MULTICAST flag; where one refuses, the registry's error names this command.
# Turning the flag on is harmless, so do it when we can.
if have ip && ! ip link show lo | grep -q MULTICAST && [[ $(id -u) -eq 0 ]]; then
  ip link set lo multicast on || echo "setup: could not set MULTICAST on lo; mDNS tests may fail" >&2
fi

# cargo-expand pins real `cargo expand` output in the macrotest cases.
if ! have cargo-expand; then
  echo "setup: installing cargo-expand (once; a few minutes)"
  cargo install cargo-expand --locked --quiet
fi
