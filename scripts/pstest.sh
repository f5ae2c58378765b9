#!/usr/bin/env bash
# Builds tests/servers/pstest (Google's in-process Cloud Pub/Sub fake,
# cloud.google.com/go/pubsub/v2/pstest v2.9.0, behind a `-addr host:port` flag) from the Go
# module proxy into $HOME/.cache/rmicro/bin/pstest. Prints the binary's path on its last line.
# The Pub/Sub tests use it where the Google Cloud SDK's Pub/Sub emulator (Java) is absent:
#   pstest -addr 127.0.0.1:<port>    (gRPC only; state in memory; serves until killed)
#
# Rebuilt only when the program changed: a hash of its main.go, go.mod and go.sum is kept
# beside the binary (bin/.pstest.sources), as scripts/interop.sh does.
# GOPATH/GOMODCACHE/GOCACHE live under $HOME/.cache/rmicro/go (as for scripts/consul.sh), so
# downloads and compiled packages are reused. Nothing is written into the repository.
# pubsub/v2 v2.9.0 says `go 1.26.0`: an older local Go refuses it (GOTOOLCHAIN=local: never
# fetch another toolchain). Every module is checked against the checksum database as usual.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/tests/servers/pstest"
cache="$HOME/.cache/rmicro"
bin="$cache/bin/pstest"
stamp="$cache/bin/.pstest.sources"

hash="$(cd "$src" && sha256sum main.go go.mod go.sum | sha256sum | cut -d' ' -f1)"
if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
  echo "pstest: up to date"
  echo "$bin"
  exit 0
fi

source "$(dirname "$0")/go-env.sh" "Google's Pub/Sub fake (pstest)"

echo "pstest: building with $(go version | cut -d' ' -f3) into $bin"
start=$SECONDS
rm -f "$stamp"
# A private temporary name: test processes running side by side may build at the same time.
tmp="$(mktemp "$cache/bin/.pstest.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$tmp" .)
chmod 755 "$tmp"
mv -f "$tmp" "$bin"
echo "$hash" >"$stamp"
echo "pstest: built in $((SECONDS - start)) s"
echo "$bin"
