#!/usr/bin/env bash
# One entry point for lifeline's benchmarks: each runs side by side with its anchor in one run
# (pg_recvlogical, kcat, COPY, native logical replication, an md5 aggregate), writes its JSON, and
# this script gathers them into bench/results/<date>.json and regenerates the summary table at the
# top of docs/benchmarks.md. --quick is a smoke run (small counts, under 5 minutes): it checks that
# every figure is produced and sane, not that the goals are met.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    *) echo "usage: bench/run.sh [--quick]" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "bench/run.sh: jq is missing: run scripts/setup.sh" >&2; exit 2; }

BUILD_DIR="${LIFELINE_BUILD_DIR:-build}"
bash scripts/build.sh >/dev/null
B="$BUILD_DIR/bench"
WORK="$(mktemp -d /tmp/lifeline-bench-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

STAMP="$(date -u +%Y-%m-%d)"
SUFFIX=""
[ "$QUICK" = 1 ] && SUFFIX="-quick"
RESULT="bench/results/${STAMP}${SUFFIX}.json"
declare -A COMMANDS

run() {
  local name="$1"
  shift
  COMMANDS[$name]="$*"
  echo "== $name: $*"
  local start
  start=$(date +%s)
  "$@" --json "$WORK/$name.json"
  echo "== $name took $(($(date +%s) - start)) s"
}

if [ "$QUICK" = 1 ]; then
  run spool "$B/spool_bench" --events 100000 --rounds 1
  run capture "$B/capture_bench" --quick
  run ship "$B/ship_bench" --quick
  run apply "$B/apply_bench" --quick
  run rows "$B/rows_bench" --rows 100000 --rounds 1
  run pipeline "$B/pipeline_bench" --quick
else
  run spool "$B/spool_bench" --rounds 3
  run capture "$B/capture_bench" --rounds 3
  run ship "$B/ship_bench" --rounds 5
  run apply "$B/apply_bench" --rounds 3 --partitions 64
  run rows "$B/rows_bench" --rows 1000000 --rounds 3
  run pipeline "$B/pipeline_bench"
fi

# Machine facts, so figures are read against the hardware and versions that produced them.
version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
MACHINE=$(jq -n \
  --arg cores "$(nproc)" \
  --arg memory "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
  --arg cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
  --arg postgresql "$(version postgresql-15)" --arg librdkafka "$(version librdkafka-dev)" \
  --arg rocksdb "$(version librocksdb-dev)" --arg compiler "$(c++ --version | head -1)" \
  '{cores: ($cores | tonumber), memory: $memory, cpu: $cpu, postgresql: $postgresql,
    librdkafka: $librdkafka, rocksdb: $rocksdb, compiler: $compiler}')

ALL="$WORK/all.json"
{
  echo "{\"date\": \"$STAMP\", \"quick\": $([ "$QUICK" = 1 ] && echo true || echo false),"
  echo "\"machine\": $MACHINE, \"benchmarks\": {"
  first=1
  for name in spool capture ship apply rows pipeline; do
    [ $first = 1 ] || echo ","
    first=0
    printf '"%s": {"command": %s, "result": %s}' "$name" \
      "$(jq -Rn --arg c "${COMMANDS[$name]}" '$c')" "$(cat "$WORK/$name.json")"
  done
  echo "}}"
} >"$ALL"
jq . "$ALL" >"$RESULT"

# Sanity: every benchmark produced at least one ratio, each finite and positive.
RATIOS="$WORK/ratios.tsv"
jq -r '.benchmarks | to_entries[] | .key as $b | .value.result
       | paths(numbers) as $p
       | select(($p | last | tostring) | test("ratio"))
       | select(($p | map(tostring) | join(".")) | test("goal|min_ratio") | not)
       | [$b, ($p | map(tostring) | join(".")), (getpath($p))] | @tsv' "$RESULT" >"$RATIOS"
status=0
for name in spool capture ship apply rows pipeline; do
  if ! grep -q "^$name	" "$RATIOS"; then
    echo "bench/run.sh: $name produced no ratio" >&2
    status=1
  fi
done
if awk -F'\t' '!($3 > 0 && $3 < 1e6) {bad = 1; print "bench/run.sh: insane figure: " $0 > "/dev/stderr"} END {exit bad}' "$RATIOS"; then :; else status=1; fi

# The summary table at the top of docs/benchmarks.md, between its markers.
TABLE="$WORK/table.md"
{
  echo "<!-- bench/run.sh: generated, do not edit by hand -->"
  echo "Last run: $STAMP$([ "$QUICK" = 1 ] && echo " (--quick: small counts, smoke figures only)"),"
  echo "$(jq -r '.machine | "\(.cores) cores, \(.memory), \(.cpu); PostgreSQL \(.postgresql), librdkafka \(.librdkafka), RocksDB \(.rocksdb)"' "$RESULT")."
  echo "Full results: \`$RESULT\`. Ratios are lifeline over its anchor (above 1 is faster), except"
  echo "where the name says otherwise (e.g. rows: diff time over anchor time, below 1 is faster)."
  echo
  echo "| benchmark | figure | value | command |"
  echo "|---|---|---|---|"
  while IFS=$'\t' read -r b path value; do
    printf '| %s | %s | %.3f | `%s` |\n' "$b" "$path" "$value" "${COMMANDS[$b]}"
  done <"$RATIOS"
  echo "<!-- bench/run.sh: end -->"
} >"$TABLE"
DOC=docs/benchmarks.md
if grep -q "<!-- bench/run.sh: generated" "$DOC"; then
  awk -v table="$TABLE" '
    /<!-- bench\/run.sh: generated/ { while ((getline line < table) > 0) print line; skip = 1; next }
    /<!-- bench\/run.sh: end -->/ { skip = 0; next }
    !skip { print }' "$DOC" >"$WORK/doc.md"
else
  awk -v table="$TABLE" 'NR == 1 { print; print ""; while ((getline line < table) > 0) print line; next } { print }' "$DOC" >"$WORK/doc.md"
fi
cp "$WORK/doc.md" "$DOC"
echo "bench/run.sh: wrote $RESULT and the table in $DOC"
exit $status
