#!/usr/bin/env bash
# Builds the go-micro side of rmicro-bench (bench/go: go-micro v5, go-micro.dev/v5 v5.30.0,
# and Eclipse paho for MQTT, from the Go module proxy) into
# $HOME/.cache/rmicro/bench-bin/gomicro-bench. A no-op when the binary was built from the
# same sources (a hash of the Go files, go.mod and go.sum is kept beside it).
# GOPATH/GOMODCACHE/GOCACHE live under $HOME/.cache/rmicro/go, shared with
# scripts/interop.sh and scripts/consul.sh. Nothing is written into the repository.
#
# go-micro v5: the module proxy serves exact versions of go-micro.dev/v5 (it refuses to list
# them); v5.30.0 is the newest v5 it serves (v6 is refused); it wants go 1.25, built here with
# the installed toolchain (GOTOOLCHAIN=local). NATS is go-micro v5's own broker
# (go-micro.dev/v5/broker/nats). MQTT is not in go-micro v5's core and the v5 MQTT plugin
# (github.com/micro/plugins/v5/broker/mqtt, github.com/go-micro/plugins/v5/...) is not served,
# so bench/go/mqtt.go is our own broker.Broker over paho that mirrors the v4 plugin's
# behaviour (JSON envelope, QoS 1, Publish not waiting for the PUBACK). tests/interop stays
# on go-micro v4.
set -euo pipefail

root="$(cd "$(dirname "$0")" && pwd)"
src="$root/go"
cache="$HOME/.cache/rmicro"
bin="$cache/bench-bin"
out="$bin/gomicro-bench"

hash="$(cd "$src" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -d' ' -f1)"
stamp="$bin/.sources"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" && -x "$out" ]]; then
  echo "bench: gomicro-bench up to date in $bin" >&2
  exit 0
fi

source "$(dirname "$0")/../scripts/go-env.sh" "the go-micro side of the bench"
# Every module of bench/go (go-micro.dev/v5, paho, their dependencies) is known to the
# checksum database, so GONOSUMDB is not needed; go.sum pins them all.
mkdir -p "$bin" "$GOMODCACHE" "$GOCACHE"

echo "bench: building gomicro-bench with $(go version | cut -d' ' -f3) into $bin" >&2
start=$SECONDS
rm -f "$stamp"
(cd "$src" && go build -trimpath -o "$out" .)
echo "$hash" >"$stamp"
echo "bench: built in $((SECONDS - start)) s" >&2
