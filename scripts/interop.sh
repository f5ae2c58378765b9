#!/usr/bin/env bash
# Builds the go-micro interop programs (tests/interop/go/*: client, service, publisher,
# subscriber, inspect) into $HOME/.cache/rmicro/interop-bin/, from go-micro v4 (go-micro.dev/v4)
# and its Consul and MQTT plugins, fetched from the Go module proxy. The interop tests
# (examples/tests/interop.rs) call this script; it is a no-op when the binaries were built
# from the same sources (a hash of the Go files, go.mod and go.sum is kept beside them).
#
# GOPATH/GOMODCACHE/GOCACHE live under $HOME/.cache/rmicro/go (as for scripts/consul.sh), so
# downloads and compiled packages are reused. Nothing is written into the repository.
#
# The checksum database (as reached through the proxy) answers 404 for the go-micro plugin
# modules (github.com/go-micro/plugins/v4/...), so they skip it (GONOSUMDB); their hashes are
# pinned in tests/interop/go.sum like every other module's.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/tests/interop"
cache="$HOME/.cache/rmicro"
bin="$cache/interop-bin"
programs=(client service publisher subscriber inspect)

hash="$(cd "$src" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -d' ' -f1)"
stamp="$bin/.sources"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
  ok=1
  for p in "${programs[@]}"; do [[ -x "$bin/$p" ]] || ok=0; done
  if ((ok)); then
    echo "interop: go-micro programs up to date in $bin"
    exit 0
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  echo "interop: the Go toolchain is needed to build the go-micro programs (https://go.dev/dl)" >&2
  exit 1
fi

export GOPATH="$cache/go"
export GOMODCACHE="$cache/go/pkg/mod"
export GOCACHE="$cache/go/build-cache"
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0
# go.mod says which Go it needs; never fetch another toolchain.
export GOTOOLCHAIN=local
export GONOSUMDB="github.com/go-micro/plugins"
mkdir -p "$bin" "$GOMODCACHE" "$GOCACHE"

echo "interop: building ${programs[*]} with $(go version | cut -d' ' -f3) into $bin"
start=$SECONDS
rm -f "$stamp"
(cd "$src" && go build -trimpath -o "$bin/" "${programs[@]/#/./go/}")
echo "$hash" >"$stamp"
echo "interop: built in $((SECONDS - start)) s"
