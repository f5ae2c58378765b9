#!/usr/bin/env bash
# Builds the go-micro interop programs into $HOME/.cache/rmicro/interop-bin/, from the Go
# module proxy:
#   - tests/interop/go/* (client, service, publisher, subscriber, inspect): go-micro v4
#     (go-micro.dev/v4 v4.11.0) with its plugins registry/consul v1.2.1, broker/mqtt v1.2.0,
#     broker/nsq v1.1.0 (go-nsq 1.0.8) and broker/kafka v1.2.0 (sarama 1.30.1), into
#     interop-bin/;
#   - tests/interop/v5/* (registry, tracecall, traceserve, client, service, publisher,
#     subscriber): go-micro v5 (go-micro.dev/v5 v5.30.0, with
#     OpenTelemetry's Go SDK and OTLP/HTTP exporter v1.35.0, the SDK go-micro v5.30 requires),
#     a module of its own, into interop-bin/v5/; client, service and streamclient again with `-tags grpc`
#     (go-micro's grpc server and client) into interop-bin/v5/grpc/.
# The interop tests (examples/tests/interop.rs, runtime/tests/nats_registry.rs) call this
# script; each module is rebuilt only when its sources changed (a hash of its Go files,
# go.mod and go.sum is kept beside the binaries).
#
# GOPATH/GOMODCACHE/GOCACHE live under $HOME/.cache/rmicro/go (as for scripts/consul.sh), so
# downloads and compiled packages are reused. Nothing is written into the repository.
#
# The checksum database (as reached through the proxy) answers 404 for the go-micro plugin
# modules (github.com/go-micro/plugins/v4/...), so they skip it (GONOSUMDB); their hashes are
# pinned in tests/interop/go.sum like every other module's.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$HOME/.cache/rmicro"

source "$root/scripts/go-env.sh" "the go-micro programs of the interop tests"
export GONOSUMDB="github.com/go-micro/plugins"

# build <module dir> <programs dir inside it> <output dir> <program>...
build() {
  local src=$1 dir=$2 bin=$3
  shift 3
  local programs=("$@")
  # The module's own files only (a nested module, such as v5/, is another build).
  local hash
  hash="$(cd "$src" && find . -mindepth 1 -type d -exec test -e '{}/go.mod' \; -prune \
    -o \( -name '*.go' -o -name go.mod -o -name go.sum \) -print \
    | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
  local stamp="$bin/.sources"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
    local ok=1 p
    for p in "${programs[@]}"; do [[ -x "$bin/$p" ]] || ok=0; done
    if ((ok)); then
      echo "interop: ${programs[*]} up to date in $bin"
      return
    fi
  fi
  mkdir -p "$bin"
  echo "interop: building ${programs[*]} with $(go version | cut -d' ' -f3) into $bin"
  local start=$SECONDS
  rm -f "$stamp"
  (cd "$src" && go build -trimpath ${TAGS:+-tags "$TAGS"} -o "$bin/" "${programs[@]/#/./$dir/}")
  echo "$hash" >"$stamp"
  echo "interop: built in $((SECONDS - start)) s"
}

build "$root/tests/interop" go "$cache/interop-bin" client service publisher subscriber inspect
build "$root/tests/interop/v5" . "$cache/interop-bin/v5" registry tracecall traceserve \
  client service publisher subscriber streamclient
# The same client and service with go-micro's grpc server and client linked in (`-tags grpc`):
# kept apart, as linking them breaks etcd's client in the same binary (see v5/peer/peer.go).
TAGS=grpc build "$root/tests/interop/v5" . "$cache/interop-bin/v5/grpc" client service streamclient
