#!/usr/bin/env bash
# Builds nsqd (NSQ's daemon, MIT) from the Go module proxy, once, and caches it at
# $HOME/.cache/rmicro/bin/nsqd (the nsq tests look there, then on PATH).
#
# Why a build: NSQ is not in Debian. We build github.com/nsqio/nsq at v1.3.0 (override with
# NSQ_VERSION=v1.x.y; the proxy serves exact versions only).
#
# Recipe (why not `go install github.com/nsqio/nsq/apps/nsqd@v1.3.0`): `go install pkg@version`
# first asks the proxy for the module's version list (to look for a deprecation notice), which
# the proxy refuses here ("reading .../github.com/nsqio/nsq/@v/list: 403 Forbidden"), and nsq's
# go.mod has a replace directive (github.com/judwhite/go-svc => github.com/mreiferson/go-svc),
# which `go install pkg@version` would refuse next anyway. So, as scripts/consul.sh does:
#   1. `go mod download -json github.com/nsqio/nsq@$NSQ_VERSION` -> the module's Dir (read-only,
#      in the module cache);
#   2. copy that Dir into a temporary build directory and make it writable;
#   3. `go build -o $HOME/.cache/rmicro/bin/nsqd ./apps/nsqd` there: nsq is then the main
#      module, so its replace directive applies (it names a module on the proxy, not a local
#      path, so nothing needs dropping) and its go.sum verifies every dependency.
# GOPATH/GOMODCACHE/GOCACHE live under $HOME/.cache/rmicro/go so downloads and compiled
# packages are reused by later runs. Nothing is written into the repository.
# A build takes under a minute on 2 cores with empty caches (downloads included), a few
# seconds with a warm build cache; the script is a no-op when a working binary exists.
set -euo pipefail

version="${NSQ_VERSION:-v1.3.0}"
cache="$HOME/.cache/rmicro"
bin="$cache/bin/nsqd"

if [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1; then
  echo "nsq: $("$bin" --version | head -n1) already at $bin"
  exit 0
fi

# nsq's go.sum is complete: the build needs no change to go.mod or go.sum. nsq 1.3 says
# `go 1.17`; the newer local toolchain builds it.
source "$(dirname "$0")/go-env.sh" nsqd

module_work_dir nsq "github.com/nsqio/nsq@$version"

echo "nsq: building nsqd"
start=$SECONDS
go build -trimpath -ldflags "-s -w" -o "$bin.tmp" ./apps/nsqd
mv -f "$bin.tmp" "$bin"
echo "nsq: built $("$bin" --version | head -n1) in $((SECONDS - start)) s at $bin"
