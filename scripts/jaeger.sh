#!/usr/bin/env bash
# Builds Jaeger (v2, the OpenTelemetry-Collector-based `jaeger` binary, Apache-2.0) from the
# Go module proxy, once, and caches it at $HOME/.cache/rmicro/bin/jaeger. The tracing tests
# export spans to it over OTLP/HTTP and read the traces back from its query API.
#
# We build github.com/jaegertracing/jaeger at v1.75.0 (override with JAEGER_VERSION; the
# proxy serves exact versions only). The recipe is scripts/nsq.sh's: download the module,
# copy it into a temporary directory, `go build ./cmd/jaeger` there, so that Jaeger is the
# main module and its go.sum verifies every dependency (`go install pkg@version` would ask
# the proxy for the version list, which it refuses).
# Caches under $HOME/.cache/rmicro/go; nothing is written into the repository. A no-op when
# a working binary exists. Prints the binary's path on its last line. The first build took
# about 6 minutes on 2 cores, downloads included (an 85 MB binary).
set -euo pipefail

version="${JAEGER_VERSION:-v1.75.0}"
cache="$HOME/.cache/rmicro"
bin="$cache/bin/jaeger"

if [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1; then
  echo "jaeger: already built"
  echo "$bin"
  exit 0
fi

source "$(dirname "$0")/go-env.sh" jaeger

module_work_dir jaeger "github.com/jaegertracing/jaeger@$version"

echo "jaeger: building ./cmd/jaeger (several minutes with empty caches)"
start=$SECONDS
go build -trimpath -ldflags "-s -w" -o "$bin.tmp" ./cmd/jaeger
mv -f "$bin.tmp" "$bin"
echo "jaeger: built in $((SECONDS - start)) s"
echo "$bin"
