#!/usr/bin/env bash
# Fuzzes every decoder that reads bytes from the network (the targets of fuzz/), on the stable
# toolchain: the targets are built with LLVM's coverage instrumentation (what cargo-fuzz does
# with `--sanitizer none`, without needing cargo-fuzz) and run by libFuzzer.
#
#   bash scripts/fuzz.sh                     # every target, 10 s each
#   bash scripts/fuzz.sh --runs 10000000     # every target, 10 million inputs each
#   bash scripts/fuzz.sh --time 60 envelope  # one target, a minute
#   bash scripts/fuzz.sh --list
#
# fuzz/Cargo.lock is the fuzz crate's own (it is outside the workspace); cargo adds to it when
# the runtime gains a dependency: commit the change with the dependency.
# The corpus grows under ~/.cache/rmicro/fuzz/<target> (seeded from fuzz/seeds/<target>);
# a crash is written to fuzz/artifacts/<target>/ and the script exits 1. Each target's last
# line is libFuzzer's count: "Done N runs in S second(s)".
set -euo pipefail
cd "$(dirname "$0")/.."

runs=""
time=10
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --time) time="$2"; shift 2 ;;
    --list) ls fuzz/fuzz_targets | sed 's/\.rs$//'; exit 0 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target $t (see --list)" >&2; exit 2; }
done

cache="${RMICRO_CACHE:-$HOME/.cache/rmicro}"
host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$cache/target-fuzz"
# cargo-fuzz's flags for `--sanitizer none`; `--target` keeps them off build scripts and
# proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_INCREMENTAL=0
echo "fuzz.sh: building ${#targets[@]} target(s) with coverage instrumentation" >&2
(cd fuzz && cargo build --release --target "$host" $(printf -- '--bin %s ' "${targets[@]}"))

status=0
for t in "${targets[@]}"; do
  corpus="$cache/fuzz/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  limit=(-max_total_time="$time")
  [ -n "$runs" ] && limit=(-runs="$runs")
  echo "fuzz.sh: $t" >&2
  if ! "$CARGO_TARGET_DIR/$host/release/$t" "$corpus" "${seeds[@]}" "${limit[@]}" \
      -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" 2> "$cache/fuzz/$t.log"; then
    echo "fuzz.sh: $t FAILED: see fuzz/artifacts/$t/ and $cache/fuzz/$t.log" >&2
    tail -40 "$cache/fuzz/$t.log" >&2
    status=1
  fi
  grep -E "^Done [0-9]+ runs" "$cache/fuzz/$t.log" | sed "s/^/$t: /" || true
done
exit $status
