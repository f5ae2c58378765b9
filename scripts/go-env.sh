# Sourced by the scripts that build Go programs from the Go module proxy (consul.sh, nsq.sh,
# pstest.sh, interop.sh, bench/build-go.sh):
#
#   source "$(dirname "$0")/go-env.sh" <what is built>   # e.g. "nsqd"
#
# Fails (exit 1) with a message naming what needs Go when there is no Go toolchain; else
# exports the environment every such build uses: the module and build caches under
# $HOME/.cache/rmicro/go (reused by later runs), read-only go.mod/go.sum (a script that must
# edit them sets GOFLAGS after), no cgo, and never another toolchain than the local one.
if ! command -v go >/dev/null 2>&1; then
  echo "the Go toolchain is needed to build $1 (https://go.dev/dl)" >&2
  exit 1
fi
export GOPATH="$HOME/.cache/rmicro/go"
export GOMODCACHE="$GOPATH/pkg/mod"
export GOCACHE="$GOPATH/build-cache"
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
mkdir -p "$HOME/.cache/rmicro/bin" "$GOMODCACHE" "$GOCACHE"
