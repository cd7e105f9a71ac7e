#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang in build-fuzz-clang and runs each for SECONDS
# (default 60) from its corpus in fuzz/corpus/<target>. New inputs go to a temporary directory, so
# the repository is left as it was; a crash fails the script and names the file holding its input.
#   bash scripts/fuzz.sh [SECONDS]          LIFELINE_FUZZ_KEEP=1 keeps the new inputs found
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
TARGETS=(pgoutput_decoder_fuzz change_event_fuzz config_fuzz)
BUILD=build-fuzz-clang
# Per input: a run longer than this is a hang; the process may not grow past this.
TIMEOUT_S=10
RSS_LIMIT_MB=2048

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found: run scripts/setup.sh (it installs clang and libclang-rt-14-dev)" >&2
  exit 2
fi

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DLIFELINE_FUZZ=ON "${launcher[@]}" >/dev/null
ninja -C "$BUILD" "${TARGETS[@]}"

work="$(mktemp -d /tmp/lifeline-fuzz.XXXXXX)"
started=$(date +%s)
failed=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$work/$t/new" "$work/$t/crashes"
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s"
  # The repo corpus is read only: libFuzzer writes new inputs to the first directory given.
  set +e
  "$BUILD/fuzz/$t" "$work/$t/new" "fuzz/corpus/$t" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT_S" -rss_limit_mb="$RSS_LIMIT_MB" \
    -artifact_prefix="$work/$t/crashes/" -print_final_stats=1 >"$work/$t/log" 2>&1
  rc=$?
  set -e
  # The last status line has the executions, coverage (cov: edges, ft: features) and corpus size.
  last=$(grep -E '^#[0-9]+' "$work/$t/log" | tail -1 || true)
  execs=$(grep -E '^stat::number_of_executed_units' "$work/$t/log" | awk '{print $2}' || true)
  echo "fuzz: $t: ${execs:-?} runs; $last"
  if [ "$rc" -ne 0 ] || compgen -G "$work/$t/crashes/*" >/dev/null; then
    failed+=("$t")
    grep -E 'ERROR|runtime error|_fuzz: |SUMMARY' "$work/$t/log" | head -20 >&2 || true
    echo "fuzz: $t FAILED (exit $rc); log: $work/$t/log" >&2
    for f in "$work/$t/crashes"/*; do
      [ -e "$f" ] && echo "fuzz: $t: the input is saved in $f (rerun: $BUILD/fuzz/$t $f)" >&2
    done
  fi
done
echo "fuzz: ${#TARGETS[@]} targets in $(($(date +%s) - started))s"

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: crashes in ${failed[*]}; everything is kept in $work" >&2
  exit 1
fi
if [ "${LIFELINE_FUZZ_KEEP:-0}" = 1 ]; then
  echo "fuzz: new inputs kept in $work/<target>/new"
else
  rm -rf "$work"
fi
