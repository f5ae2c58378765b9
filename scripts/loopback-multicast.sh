#!/usr/bin/env bash
# Lets mDNS work on the loopback interface, for rmicro and for go-micro peers on this host.
# Run as root; idempotent. scripts/setup.sh runs it; the interop tests run it inside the
# network namespaces they create (whose one interface is lo).
#
# - `lo` up with its MULTICAST flag: rmicro's mdns registry joins 224.0.0.251 on lo, which
#   some kernels refuse without the flag.
# - 224.0.0.0/4 routed to lo when no route leads to 224.0.0.251 (a loopback-only host):
#   go-micro's mdns registry picks no interface and sends its queries where the routing table
#   says, so without a route it finds nothing, not even another go-micro service. A host with
#   another interface that carries multicast is left as it is (its mDNS goes there).
set -euo pipefail

if ! command -v ip >/dev/null 2>&1; then
  echo "loopback-multicast: no \`ip\` command (iproute2); mDNS on lo not prepared" >&2
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "loopback-multicast: not root; mDNS on lo not prepared" >&2
  exit 0
fi
ip link set lo up
if ! ip link show lo | grep -q MULTICAST; then
  ip link set lo multicast on || echo "loopback-multicast: could not set MULTICAST on lo" >&2
fi
if ! ip route get 224.0.0.251 >/dev/null 2>&1; then
  ip route add 224.0.0.0/4 dev lo
  echo "loopback-multicast: routed 224.0.0.0/4 to lo (no other route to the mDNS group)"
fi
