#!/usr/bin/env bash
# Builds a Consul agent from the Go module proxy, once, and caches it at
# $HOME/.cache/rmicro/bin/consul (the consul tests look there, then on PATH).
#
# Why a build: Consul is not in Debian, and releases from 1.17 on are under the BUSL licence.
# We use the last MPL-2.0 release the proxy serves: v1.16.3 (v1.16.4/5 are not on the proxy;
# v1.16.6 already ships the BUSL LICENSE file). Override with CONSUL_VERSION=v1.16.x.
#
# Recipe (why not `go install github.com/hashicorp/consul@v1.16.3`): consul's go.mod has
# `replace` directives pointing at local paths (./api, ./sdk, ./proto-public,
# ./envoyextensions, ./troubleshoot), and `go install pkg@version` refuses modules with
# replace directives. So:
#   1. `go mod download -json github.com/hashicorp/consul@$CONSUL_VERSION` -> the module's Dir
#      (read-only, in the module cache);
#   2. copy that Dir into a temporary build directory and make it writable;
#   3. `go mod edit -dropreplace=<each>`: the sub-modules then come from the proxy at the
#      versions consul's go.mod requires (the same code the release was built from); one of
#      them skips the checksum database (GONOSUMDB, see below), which has no record of it;
#   4. `go build -o $HOME/.cache/rmicro/bin/consul .` with GOFLAGS=-mod=mod (go.sum gains the
#      sub-modules' sums); `go mod tidy` only if the plain build fails.
# GOPATH/GOMODCACHE/GOCACHE live under $HOME/.cache/rmicro/go so downloads and compiled
# packages are reused by later runs. Nothing is written into the repository.
# A build takes several minutes on 2 cores; the script is a no-op when a working binary exists.
set -euo pipefail

version="${CONSUL_VERSION:-v1.16.3}"
cache="$HOME/.cache/rmicro"
bin="$cache/bin/consul"

if [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1; then
  echo "consul: $("$bin" version | head -n1) already at $bin"
  exit 0
fi

source "$(dirname "$0")/go-env.sh" consul
# The sub-modules' sums are added to go.sum (see above). Consul 1.16 says `go 1.20`; the newer
# local toolchain builds it.
export GOFLAGS="-mod=mod -buildvcs=false"
# The sub-modules consul's go.mod required while it replaced them by local paths were never
# checked against the checksum database by consul's own build. The checksum database (as
# reached through proxy.golang.org) answers 404 for one of them, envoyextensions v0.4.1,
# although the proxy serves it from the same git tag as consul's own module. Skip the checksum
# database for that one sub-module only; everything else, consul's root module and the other
# sub-modules included, is verified as usual.
export GONOSUMDB="github.com/hashicorp/consul/envoyextensions"

module_work_dir consul "github.com/hashicorp/consul@$version"

# Drop every local-path replace directive (`X => ./path`), listed before editing (go mod edit
# rewrites a one-entry replace block as a single `replace X => ./path` line).
local_replaces="$(sed -n 's/^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]\{1,\}\)[[:space:]]\{1,\}=>[[:space:]]\{1,\}\.\/.*/\2/p' go.mod)"
for path in $local_replaces; do
  echo "consul: dropping replace $path"
  go mod edit -dropreplace="$path"
done
if grep -Eq '=>[[:space:]]+\./' go.mod; then
  echo "consul: local replace directives left in go.mod:" >&2
  grep -E '=>[[:space:]]+\./' go.mod >&2
  exit 1
fi

ldflags="-s -w -X github.com/hashicorp/consul/version.GitCommit=rmicro-build"
echo "consul: building (several minutes on 2 cores)"
start=$SECONDS
if ! go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" .; then
  echo "consul: plain build failed; retrying after go mod tidy"
  go mod tidy
  go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" .
fi
mv -f "$bin.tmp" "$bin"
echo "consul: built $("$bin" version | head -n1) in $((SECONDS - start)) s at $bin"
