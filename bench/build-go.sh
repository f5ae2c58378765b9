#!/usr/bin/env bash
# Builds the go-micro side of rmicro-bench (bench/go, go-micro v4 and its MQTT plugin from
# the Go module proxy) into $HOME/.cache/rmicro/bench-bin/gomicro-bench. A no-op when the
# binary was built from the same sources (a hash of the Go files, go.mod and go.sum is kept
# beside it). GOPATH/GOMODCACHE/GOCACHE live under $HOME/.cache/rmicro/go, shared with
# scripts/interop.sh and scripts/consul.sh. Nothing is written into the repository.
#
# go-micro v5 is not used: the module proxy answers 403 for go-micro.dev/v5 (and for the v5
# plugins), so this is go-micro v4 (go-micro.dev/v4 v4.11.0), as in tests/interop.
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

if ! command -v go >/dev/null 2>&1; then
  echo "bench: the Go toolchain is needed to build the go-micro side (https://go.dev/dl)" >&2
  exit 1
fi

export GOPATH="$cache/go"
export GOMODCACHE="$cache/go/pkg/mod"
export GOCACHE="$cache/go/build-cache"
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
# The checksum database answers 404 for the go-micro plugin modules; go.sum pins them.
export GONOSUMDB="github.com/go-micro/plugins"
mkdir -p "$bin" "$GOMODCACHE" "$GOCACHE"

echo "bench: building gomicro-bench with $(go version | cut -d' ' -f3) into $bin" >&2
start=$SECONDS
rm -f "$stamp"
(cd "$src" && go build -trimpath -o "$out" .)
echo "$hash" >"$stamp"
echo "bench: built in $((SECONDS - start)) s" >&2
