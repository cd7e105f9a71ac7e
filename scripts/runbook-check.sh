#!/usr/bin/env bash
# Runs the commands of docs/runbook.md as written against `lifeline demo`'s environment, in the
# order the runbook gives them, and checks each block's exit code and output against the comment
# above it. Usage: scripts/runbook-check.sh [path/to/lifeline]  (default: build/cli/lifeline)
#
# The runbook marks every ```sh block with a comment the reader does not see:
#   <!-- check exit=0 expect="clean":true -->   run it; exit code in the list (exit=0,1); output
#                                                holds each expect= text (no spaces in it)
#   <!-- check skip (why) -->                   a site-specific or infrastructure step: not run
#   <!-- check fault=NAME -->                   what the scenario assumes happens here: the check
#                                                does it to the demo environment (fault_NAME below)
# An unmarked ```sh block fails the check, so no command of the runbook goes unchecked by mistake.
#
# The environment: `lifeline demo --keep` leaves the two clusters' data, the spool and the
# standby's stored position; the check starts the clusters again, a devkafka (its topic lives in
# memory only, so it starts empty at the seq after the demo's last), and capture and the replayer
# from the example configs of scripts/systemd/ as their units would. `systemctl start|stop` of the
# two units is emulated. Takes about three minutes; RUNBOOK_KEEP=1 keeps the work directory.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
LIFELINE=$(realpath "${1:-$REPO/build/cli/lifeline}")
RUNBOOK=${RUNBOOK:-$REPO/docs/runbook.md}
W=$(mktemp -d /tmp/lifeline-runbook-XXXXXX)
PGBIN=/usr/lib/postgresql/15/bin
KAFKA_PID=""

say() { echo "runbook-check: $*"; }
die() {
  say "FAIL: $*"
  exit 1
}
[ -x "$LIFELINE" ] || die "no lifeline binary at $LIFELINE (build it, or pass its path)"
[ -x "$PGBIN/pg_ctl" ] || die "PostgreSQL 15 server binaries missing: run scripts/setup.sh"
for tool in jq curl psql pg_dump pg_isready timeout; do
  command -v "$tool" >/dev/null || die "$tool missing: run scripts/setup.sh"
done

as_owner() {  # the clusters belong to the postgres OS user when the demo ran as root
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  [ -f "$W/env.sh" ] && (source "$W/env.sh" && stop_daemon capture && stop_daemon replay) >/dev/null 2>&1
  if [ -n "$KAFKA_PID" ]; then
    kill "$KAFKA_PID" 2>/dev/null
    wait "$KAFKA_PID" 2>/dev/null
  fi
  for d in "$W"/demo/lifeline-*; do
    [ -f "$d/data/postmaster.pid" ] && as_owner "$PGBIN/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1
  done
  if [ "${RUNBOOK_KEEP:-0}" = 1 ]; then say "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

# ---- the demo environment -------------------------------------------------------------------
mkdir -p "$W/bin" "$W/work"
chmod 755 "$W"  # the clusters run as the postgres OS user, which must reach their directories
ln -s "$LIFELINE" "$W/bin/lifeline"
export PATH="$W/bin:$PATH"
say "work directory $W"
say "lifeline demo --keep (10 s of load)"
lifeline demo --keep --workdir "$W/demo" --duration 10s --rate 50 > "$W/demo.out" 2>&1 ||
  { cat "$W/demo.out"; die "the demo failed"; }
PRIMARY_DIR=$(echo "$W"/demo/lifeline-primary-*)
STANDBY_DIR=$(echo "$W"/demo/lifeline-standby-*)
for d in "$PRIMARY_DIR" "$STANDBY_DIR"; do
  as_owner "$PGBIN/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t 60 start >/dev/null ||
    die "cannot start the cluster in $d"
done
port_of() { sed -n 's/^port = \([0-9]*\).*/\1/p' "$1/data/postgresql.conf" | tail -1; }
# A free port below the kernel's ephemeral range, so no client connection takes it meanwhile.
free_port() {
  python3 -c '
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    port, s = random.randint(10000, max(11000, low) - 1), socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(port)
        break
    except OSError:
        pass
    finally:
        s.close()
' || die "no free port"
}

mkfifo "$W/kafka.ctl"
lifeline devkafka --brokers 3 --topic lifeline.events:1 --bootstrap-file "$W/bootstrap" \
  < "$W/kafka.ctl" > "$W/devkafka.log" 2>&1 &
KAFKA_PID=$!
exec 7> "$W/kafka.ctl"  # devkafka's control lines (down all, up all)
for _ in $(seq 100); do [ -s "$W/bootstrap" ] && break; sleep 0.2; done
[ -s "$W/bootstrap" ] || die "devkafka did not start: $(cat "$W/devkafka.log")"

cat > "$W/env.sh" <<EOF
export PATH="$PATH"
W="$W"
PRIMARY="host=127.0.0.1 port=$(port_of "$PRIMARY_DIR") user=postgres dbname=app"
STANDBY="host=127.0.0.1 port=$(port_of "$STANDBY_DIR") user=postgres dbname=app"
BROKERS="$(cat "$W/bootstrap")"
TOPIC=lifeline.events
SPOOL="$W/demo/spool"
CAPTURE_METRICS=127.0.0.1:$(free_port)
REPLAY_METRICS=127.0.0.1:$(free_port)
EOF
cat >> "$W/env.sh" <<'EOF'
# The units' ExecStart, with their config files; stop is SIGTERM and a wait, as systemd does.
start_daemon() {
  local addr=CAPTURE_METRICS
  [ "$1" = replay ] && addr=REPLAY_METRICS
  lifeline "$1" --config "$W/$1.yaml" >> "$W/$1.log" 2>&1 < /dev/null &
  echo $! > "$W/$1.pid"
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://${!addr}/health" && return 0
    kill -0 "$(cat "$W/$1.pid")" 2>/dev/null || break
    sleep 0.2
  done
  echo "lifeline $1 did not come up; see $W/$1.log" >&2
  return 1
}
stop_daemon() {
  [ -f "$W/$1.pid" ] || return 0
  local pid
  pid=$(cat "$W/$1.pid")
  rm -f "$W/$1.pid"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null
}
systemctl() {
  case "$1 ${2%.service}" in
    "start lifeline-capture") start_daemon capture ;;
    "stop lifeline-capture") stop_daemon capture ;;
    "start lifeline-replay") start_daemon replay ;;
    "stop lifeline-replay") stop_daemon replay ;;
    *) echo "runbook-check: systemctl $* is not emulated" >&2; return 2 ;;
  esac
}
cd "$W/work"
EOF
source "$W/env.sh"
touch "$W/state.sh"

# The demo's topic went with its devkafka; the new topic starts at offset 0 with the seq after the
# shipper's cursor. What the standby had not applied up to that cursor comes from the spool, and
# the standby's stored position moves to the new topic's start.
SHIPPED=$(lifeline spool stats --spool "$SPOOL" --format json | jq '.cursors.shipper')
APPLIED=$(psql -qAt -d "$STANDBY" -c "SELECT max(last_seq) FROM lifeline.replay_position WHERE stream = '$TOPIC'")
[ -n "$SHIPPED" ] && [ -n "$APPLIED" ] || die "no shipper cursor in the spool or no position on the standby"
if [ "$SHIPPED" -gt "$APPLIED" ]; then
  lifeline replay --target "$STANDBY" --spool "$SPOOL" --from-seq $((APPLIED + 1)) --until-seq "$SHIPPED" \
    --stop-at-end > "$W/tail-replay.log" 2>&1 || die "replaying seq $((APPLIED + 1))..$SHIPPED failed"
fi
psql -qAt -d "$STANDBY" -c "UPDATE lifeline.replay_position SET next_offset = 0, last_seq = $SHIPPED WHERE stream = '$TOPIC'" ||
  die "cannot move the standby's position"

# The daemons' configs: the examples of scripts/systemd/ with the demo's addresses and no TLS.
drop_kafka_properties() { awk '/^kafka-property:/ {skip=1; next} skip && /^  / {next} {skip=0; print}'; }
sed -e "s|^source: .*|source: \"$PRIMARY\"|" -e '/^source-password-file:/d' \
  -e "s|^spool: .*|spool: $SPOOL|" -e "s|^kafka-brokers: .*|kafka-brokers: $BROKERS|" \
  -e "s|^metrics-addr: .*|metrics-addr: $CAPTURE_METRICS|" -e 's|^topic-partitions: .*|topic-partitions: 1|' \
  "$REPO/scripts/systemd/capture.yaml.example" | drop_kafka_properties > "$W/capture.yaml"
sed -e "s|^target: .*|target: \"$STANDBY\"|" -e '/^target-password-file:/d' \
  -e "s|^kafka-brokers: .*|kafka-brokers: $BROKERS|" -e "s|^metrics-addr: .*|metrics-addr: $REPLAY_METRICS|" \
  "$REPO/scripts/systemd/replay.yaml.example" | drop_kafka_properties > "$W/replay.yaml"
systemctl start lifeline-capture || die "capture did not start: $(tail -5 "$W/capture.log")"
systemctl start lifeline-replay || die "the replayer did not start: $(tail -5 "$W/replay.log")"

# ---- what the scenarios assume happened -------------------------------------------------------
load() { lifeline load --target "$PRIMARY" --rate 50 --duration "$1" > /dev/null || die "the load failed"; }
sql() { psql -qAt -v ON_ERROR_STOP=1 -d "$1" -c "$2" || die "SQL failed on $1: $2"; }
caught_up() {  # the standby applied every transaction of the stream
  for _ in $(seq 120); do
    [ "$(lifeline gapcheck rpo --source "$PRIMARY" --target "$STANDBY" --kafka-brokers "$BROKERS" \
      --topic "$TOPIC" --format json 2>/dev/null | jq .lost_transactions)" = 0 ] && return 0
    sleep 0.5
  done
  die "the standby did not catch up"
}
pg() { as_owner "$PGBIN/pg_ctl" -D "$1/data" -l "$1/postgres.log" -w -t 60 "${@:2}" > /dev/null; }
remember() { declare -p "$@" >> "$W/state.sh"; }
lsn_number() { local hi=${1%/*} lo=${1#*/}; echo $(( (16#${hi:-0} << 32) + 16#${lo:-0} )); }

fault_standby-loses-rows() {
  load 4s
  caught_up
  sql "$STANDBY" "DELETE FROM emergency_requests WHERE id IN (SELECT id FROM emergency_requests ORDER BY created_at DESC LIMIT 5)"
  say "  5 recent rows deleted on the standby behind the replayer's back"
}
fault_primary-down() {
  load 2s
  pg "$PRIMARY_DIR" -m immediate stop || die "cannot stop the primary"
  say "  the primary stopped (immediate)"
}
fault_primary-up() {
  pg "$PRIMARY_DIR" start || die "cannot start the primary"
  say "  the primary started again"
}
fault_pitr() {
  load 3s
  caught_up
  T=$(sql "$PRIMARY" "SELECT now()::text")
  pg_dump -d "$PRIMARY" -f "$W/at-T.sql" || die "pg_dump failed"
  sleep 0.2
  sql "$PRIMARY" "DELETE FROM emergency_requests WHERE status IN ('pending', 'assigned') AND created_at < '$T'::timestamptz - interval '1 second'" > /dev/null
  load 3s
  sleep 2  # capture's last transactions reach the topic
  caught_up
  sql "$PRIMARY" "CREATE DATABASE restored"
  RESTORED="${PRIMARY/dbname=app/dbname=restored}"
  psql -q -v ON_ERROR_STOP=1 -d "$RESTORED" -f "$W/at-T.sql" > /dev/null 2>&1 || die "restoring the dump failed"
  remember T RESTORED
  say "  T=$T; the bad change deleted the open calls; database 'restored' holds the primary at T"
}
fault_region-loss() {
  load 2s
  caught_up
  local answered
  answered=$(grep -c "ok all brokers down" "$W/devkafka.log" || true)
  echo "down all" >&7
  for _ in $(seq 100); do
    [ "$(grep -c "ok all brokers down" "$W/devkafka.log" || true)" -gt "$answered" ] && break
    sleep 0.1
  done
  [ "$(grep -c "ok all brokers down" "$W/devkafka.log" || true)" -gt "$answered" ] || die "devkafka did not take its brokers down"
  # One transaction; the LSN is read inside it, so its commit record lies after that LSN.
  local inside spooled=0/0
  inside=$(lsn_number "$(sql "$PRIMARY" "INSERT INTO emergency_requests (customer_name, phone_number) VALUES ('never left 1', '1'), ('never left 2', '2'), ('never left 3', '3'); SELECT pg_current_wal_lsn()")")
  # Capture spools them (the shipper cannot reach the brokers): wait for the spool to hold the commit.
  for _ in $(seq 120); do
    spooled=$(lifeline spool stats --spool "$SPOOL" --format json 2>/dev/null | jq -r .last_commit_lsn)
    case "$spooled" in */*) ;; *) spooled=0/0 ;; esac
    [ "$(lsn_number "$spooled")" -gt "$inside" ] && break
    sleep 0.25
  done
  [ "$(lsn_number "$spooled")" -gt "$inside" ] || die "capture did not spool the 3 calls (spool at $spooled)"
  kill -KILL "$(cat "$W/capture.pid")" && rm -f "$W/capture.pid"
  pg "$PRIMARY_DIR" -m immediate stop || die "cannot stop the primary"
  echo "up all" >&7
  say "  region lost: brokers unreachable, 3 calls committed and spooled, capture killed, primary stopped"
}
fault_app-writes-standby() {
  sql "$STANDBY" "INSERT INTO emergency_requests (customer_name, phone_number) VALUES ('after failover', '0')"
  say "  the application wrote a call to the promoted standby"
}
fault_old-region-back() {
  pg "$PRIMARY_DIR" start || die "cannot start the old primary"
  say "  the old primary is back (capture stays down)"
}

# ---- the runbook's blocks, in order -------------------------------------------------------------
run_block() {  # file line exits expects...
  local file=$1 line=$2 exits=$3 rc vars
  shift 3
  # Variables a block sets are kept for the blocks after it, as in the operator's shell.
  vars=$(grep -oE '(^|[[:space:];])[A-Z_][A-Z0-9_]*=' "$file" | tr -d ' ;=' | sort -u | tr '\n' ' ')
  say "block at line $line (exit ${exits//,/ or }):"
  sed 's/^/    $ /' "$file"
  timeout --kill-after=10 600 bash -c '
    source "$1"; source "$2"
    [ -n "$4" ] && trap "declare -p $4 >> \"$2\" 2>/dev/null" EXIT
    source "$3"' _ "$W/env.sh" "$W/state.sh" "$file" "$vars" > "$file.out" 2>&1 < /dev/null
  rc=$?
  sed 's/^/      /' "$file.out" | cut -c1-400 | head -40
  [[ ",$exits," == *",$rc,"* ]] || die "block at line $line exited $rc, the runbook says ${exits//,/ or }"
  for text in "$@"; do
    grep -qF -- "$text" "$file.out" || die "block at line $line: its output lacks $text"
  done
  say "  ok (exit $rc)"
}

directive_re='^<!-- check (.*) -->$'
n=0 pending="" in_block=0 block_line=0 checked=0 skipped=0 line_no=0
while IFS= read -r line || [ -n "$line" ]; do
  line_no=$((line_no + 1))
  if [ $in_block = 1 ]; then
    if [ "$line" = '```' ]; then
      in_block=0
      if [ "$pending" = skip ]; then
        skipped=$((skipped + 1))
      else
        read -r -a args <<< "$pending"
        exits=0 expects=()
        for a in "${args[@]}"; do
          case "$a" in
            exit=*) exits=${a#exit=} ;;
            expect=*) expects+=("${a#expect=}") ;;
            *) die "line $block_line: unknown check directive '$a'" ;;
          esac
        done
        run_block "$W/block-$n.sh" "$block_line" "$exits" "${expects[@]}"
        checked=$((checked + 1))
      fi
      pending=""
    else
      echo "$line" >> "$W/block-$n.sh"
    fi
    continue
  fi
  if [[ "$line" =~ $directive_re ]]; then
    directive=${BASH_REMATCH[1]}
    if [[ "$directive" == fault=* ]]; then
      say "fault: ${directive#fault=}"
      "fault_${directive#fault=}" || die "fault ${directive#fault=} failed"
    elif [[ "$directive" == skip* ]]; then
      pending=skip
    else
      pending=$directive
    fi
  elif [[ "$line" == '```sh' ]]; then
    [ -n "$pending" ] || die "line $line_no: a \`\`\`sh block without a check comment above it"
    n=$((n + 1)) in_block=1 block_line=$line_no
    : > "$W/block-$n.sh"
  elif [ -n "$line" ] && [ -n "$pending" ]; then
    die "line $line_no: a check comment must stand right above its \`\`\`sh block"
  fi
done < "$RUNBOOK"
[ $in_block = 0 ] || die "an unterminated code block"
say "PASS: $checked blocks run as written, $skipped skipped (site-specific)"
