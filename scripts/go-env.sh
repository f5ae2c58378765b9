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

# module_work_dir <name> <module@version>: downloads the module from the proxy, copies it into
# a fresh temporary directory (removed when the script exits), makes it writable and `cd`s
# into it, so that the module is the main module of the build that follows (its go.sum then
# verifies every dependency, and its replace directives apply). `go install pkg@version`
# would ask the proxy for the version list, which it refuses.
module_work_dir() {
  local name=$1 module=$2 json dir
  echo "$name: downloading $module from the Go module proxy"
  json="$(go mod download -json "$module")"
  dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  if [[ -z "$dir" || ! -d "$dir" ]]; then
    echo "$name: download failed:" >&2
    printf '%s\n' "$json" >&2
    exit 1
  fi
  MODULE_WORK="$(mktemp -d "${TMPDIR:-/tmp}/rmicro-$name-build.XXXXXX")"
  trap 'chmod -R u+w "$MODULE_WORK" 2>/dev/null; rm -rf "$MODULE_WORK"' EXIT
  echo "$name: copying the source to $MODULE_WORK"
  cp -R "$dir/." "$MODULE_WORK/"
  chmod -R u+w "$MODULE_WORK"
  cd "$MODULE_WORK"
}
