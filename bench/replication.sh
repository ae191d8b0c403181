#!/usr/bin/env bash
# Replication benchmark: PostgreSQL 15 and shardgate on the same machine, in the same run, each
# measurement on a freshly initialised 100,000-account pgbench data set (`pgbench -i`, scale 1),
# with `pgbench -M prepared -c 8 -j 2 -T $DURATION`:
#   1. PostgreSQL 15 (default settings): TPC-B-like (builtin) and -S (select only)
#   2. shardgate without replicas: TPC-B and -S
#   3. shardgate with two replicas (weights 2 and 1) in each replication mode (asynchronous,
#      semi_synchronous with min_acks = 1, synchronous): TPC-B, with SHOW shardgate.replicas polled
#      every 0.5 s during the run (max lag_records / lag_seconds) and read right after it
#      (apply_p50_ms / apply_p99_ms); then, once both replicas report lag_records = 0, the
#      primary and replica files are opened read-only and their pgbench checksums compared
#   4. shardgate with two replicas (asynchronous): -S, and the reads per database (2:1 spread)
# Each shardgate configuration is its own config file, data dir and server process, stopped with
# SIGTERM and required to exit 0. Any failed pgbench transaction, server error, hang or checksum
# mismatch fails the script. Installs PostgreSQL 15 from Debian when missing.
#
# Environment: DURATION (seconds per pgbench run, default 20), PG_PORT (default 5497),
# SG_PORT (first shardgate port, default 6497; each configuration takes the next one),
# KEEP_WORK=1 keeps the temporary directory (logs, configs, data files) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
DURATION=${DURATION:-20}
PG_PORT=${PG_PORT:-5497}
SG_PORT=${SG_PORT:-6497}
PGBIN=/usr/lib/postgresql/15/bin
# pgbench runs get this much longer than -T before they count as hung.
HANG_MARGIN=${HANG_MARGIN:-120}
# How long replicas may take to reach lag_records = 0 after a run.
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-300}

if ! [ -x $PGBIN/initdb ] || ! command -v pgbench >/dev/null || ! command -v psql >/dev/null \
  || ! command -v pg_isready >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
fi
if command -v sqlite3 >/dev/null; then
  SQLITE=sqlite3
elif command -v python3 >/dev/null; then
  SQLITE=python3
else
  echo "neither sqlite3 nor python3 is available to read the database files" >&2
  exit 1
fi


# shellcheck source=bench/lib.sh
source bench/lib.sh

work=$(mktemp -d)
SG_PID=
POLL_PID=
cleanup() {
  local rc=$?
  if [ -n "$POLL_PID" ]; then
    touch "$work/stop-poll" 2>/dev/null || true
    wait "$POLL_PID" 2>/dev/null || true
  fi
  if [ -n "$SG_PID" ] && kill -0 "$SG_PID" 2>/dev/null; then
    kill -TERM "$SG_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SG_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SG_PID" 2>/dev/null || true
  fi
  su postgres -c "$PGBIN/pg_ctl -D $work/pg stop -m fast" >/dev/null 2>&1 || true
  remove_work_and_exit "$rc"
}
trap cleanup EXIT
chmod 777 "$work"

for port in "$PG_PORT" $(seq "$SG_PORT" $((SG_PORT + 5))); do
  port_busy "$port" && die "port $port is already in use (set PG_PORT / SG_PORT)"
done

# ---------------------------------------------------------------------------------------------
# pgbench helpers


# init_pgbench ARGS... : a fresh scale-1 data set.
init_pgbench() {
  local out="$work/pgbench-init.log"
  if ! timeout 600 pgbench -i -q -s 1 "$@" >"$out" 2>&1; then
    cat "$out" >&2
    die "pgbench -i $* failed"
  fi
}

# ---------------------------------------------------------------------------------------------
# 1. PostgreSQL 15 baseline, default settings.
log "PostgreSQL 15 on port $PG_PORT"
su postgres -c "$PGBIN/initdb -D $work/pg -A trust" >/dev/null
su postgres -c "$PGBIN/pg_ctl -D $work/pg -o '-p $PG_PORT -k $work -c listen_addresses=127.0.0.1' -l $work/pg.log start -w" >/dev/null
su postgres -c "createdb -h 127.0.0.1 -p $PG_PORT bench"
PG=(-h 127.0.0.1 -p "$PG_PORT" -U postgres bench)
init_pgbench "${PG[@]}"
pg_tpcb=$(run_pgbench pg-tpcb prepared 8 2 "${PG[@]}")
init_pgbench "${PG[@]}"
pg_select=$(run_pgbench pg-select prepared 8 2 -S "${PG[@]}")
# Stop it so it does not compete with shardgate for the CPUs.
su postgres -c "$PGBIN/pg_ctl -D $work/pg stop -m fast" >/dev/null

# ---------------------------------------------------------------------------------------------
# shardgate helpers
private_shardgate
build=$(checkout_label)
export PGPASSWORD=app PGCONNECT_TIMEOUT=10
next_port=$SG_PORT

# write_config NAME MODE REPLICAS : writes $work/NAME.toml (REPLICAS is 0 or 2), sets SG_CONF,
# SG_DATA, SG_LISTEN_PORT.
write_config() {
  local name=$1 mode=$2 replicas=$3
  SG_CONF=$work/$name.toml
  SG_DATA=$work/data-$name
  SG_LISTEN_PORT=$next_port
  next_port=$((next_port + 1))
  write_sg_toml "$SG_CONF" "bench/replication.sh: $name" "$SG_LISTEN_PORT" "$SG_DATA" \
    scram-sha-256 1 "$replicas" "$mode" NORMAL
}


# check_status NAME FILE : every database healthy, with 0 errors and status ok.
check_status() {
  local bad
  bad=$(cols "$2" name healthy errors status | awk '$2 != "t" || $3 != 0 || $4 != "ok"')
  [ -z "$bad" ] || { cat "$2" >&2; die "$1: SHOW shardgate.replicas reports unhealthy databases or errors: $bad"; }
}

# start_poll NAME / stop_poll : SHOW shardgate.replicas every 0.5 s into $work/poll-NAME.txt.
start_poll() {
  POLL_FILE=$work/poll-$1.txt
  rm -f "$work/stop-poll"
  : >"$POLL_FILE"
  (
    set +e
    while [ ! -e "$work/stop-poll" ]; do
      show_replicas >>"$POLL_FILE" 2>>"$POLL_FILE.err" || echo "poll failed at $(date +%T.%N)" >>"$POLL_FILE.err"
      sleep 0.5
    done
  ) &
  POLL_PID=$!
}
stop_poll() {
  touch "$work/stop-poll"
  wait "$POLL_PID" || true
  POLL_PID=
}

# db_checksums FILE : the pgbench checksums of one SQLite file, opened read-only.
CHECK_SQL="SELECT 'accounts', sum(abalance), count(*) FROM pgbench_accounts;
SELECT 'history', count(*), sum(delta) FROM pgbench_history;
SELECT 'tellers', sum(tbalance), count(*) FROM pgbench_tellers;
SELECT 'branches', sum(bbalance), count(*) FROM pgbench_branches;"
db_checksums() {
  [ -f "$1" ] || die "database file $1 does not exist"
  if [ "$SQLITE" = sqlite3 ]; then
    sqlite3 -readonly -batch -noheader -separator ' ' "$1" "$CHECK_SQL"
  else
    python3 - "$1" "$CHECK_SQL" <<'PY'
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for stmt in sys.argv[2].split(";"):
    if stmt.strip():
        print(" ".join("" if v is None else str(v) for v in con.execute(stmt).fetchone()))
PY
  fi
}

# compare_files NAME : primary against both replica files.
compare_files() {
  local name=$1 primary replica f
  primary=$(db_checksums "$SG_DATA/main/primary.db") || die "$name: cannot read primary.db"
  log "$name: primary.db   $(echo "$primary" | paste -sd';' | sed 's/;/; /g')"
  for f in replica-1 replica-2; do
    replica=$(db_checksums "$SG_DATA/main/$f.db") || die "$name: cannot read $f.db"
    if [ "$replica" != "$primary" ]; then
      echo "primary.db:" >&2; echo "$primary" >&2
      echo "$f.db:" >&2; echo "$replica" >&2
      die "$name: CHECKSUM MISMATCH between primary.db and $f.db"
    fi
    log "$name: $f.db matches"
  done
}

declare -A TPS LAG

# ---------------------------------------------------------------------------------------------
# 2. shardgate, no replicas.
write_config plain asynchronous 0
start_sg plain
init_pgbench "${SG[@]}"
TPS[plain-tpcb]=$(run_pgbench plain-tpcb prepared 8 2 "${SG[@]}")
init_pgbench "${SG[@]}"
TPS[plain-select]=$(run_pgbench plain-select prepared 8 2 -S "${SG[@]}")
stop_sg plain

# ---------------------------------------------------------------------------------------------
# 3. shardgate, two replicas, TPC-B per replication mode.
for mode in asynchronous semi_synchronous synchronous; do
  name=$mode
  write_config "$name" "$mode" 2
  start_sg "$name"
  init_pgbench "${SG[@]}"
  # Start from replicas that have applied the initial data set.
  wait_caught_up "$name" 2
  start_poll "$name"
  TPS[$name-tpcb]=$(run_pgbench "$name-tpcb" prepared 8 2 "${SG[@]}")
  show_replicas >"$work/after-$name.txt" || die "$name: SHOW shardgate.replicas failed"
  stop_poll
  check_status "$name" "$work/after-$name.txt"
  if [ -s "$POLL_FILE.err" ]; then
    log "$name: some polls failed:"; head -n 5 "$POLL_FILE.err" >&2
  fi
  lines=""
  while read -r db p50 p99; do
    read -r max_rec max_sec polls < <(cols "$POLL_FILE" name lag_records lag_seconds | awk -v db="$db" '
      $1 == db { n++; if ($2 + 0 > r) r = $2 + 0; if ($3 + 0 > s) s = $3 + 0 }
      END { printf "%d %.3f %d\n", r, s, n }')
    lines+="- $mode TPC-B, $db: apply_p50_ms=$p50, apply_p99_ms=$p99; max lag_records=$max_rec, max lag_seconds=$max_sec (over $polls polls)"$'\n'
  done < <(cols "$work/after-$name.txt" role name apply_p50_ms apply_p99_ms | awk '$1 == "replica" {print $2, $3, $4}')
  LAG[$name]=$lines
  log "$name: SHOW shardgate.replicas right after pgbench:"
  cat "$work/after-$name.txt" >&2
  wait_caught_up "$name" 2
  compare_files "$name"
  stop_sg "$name"
done

# ---------------------------------------------------------------------------------------------
# 4. shardgate, two replicas (asynchronous), -S: reads spread 2:1 over the replicas.
name=async-select
write_config "$name" asynchronous 2
start_sg "$name"
init_pgbench "${SG[@]}"
wait_caught_up "$name" 2
show_replicas >"$work/before-$name.txt" || die "$name: SHOW shardgate.replicas failed"
TPS[$name]=$(run_pgbench "$name" prepared 8 2 -S "${SG[@]}")
show_replicas >"$work/after-$name.txt" || die "$name: SHOW shardgate.replicas failed"
log "$name: SHOW shardgate.replicas after pgbench -S:"
cat "$work/after-$name.txt" >&2
reads_delta=$(join <(cols "$work/before-$name.txt" name reads | sort) <(cols "$work/after-$name.txt" name role reads | sort))
reads=$(echo "$reads_delta" | awk '{printf "- %s (%s): reads=%d (%d during the -S run)\n", $1, $3, $4, $4 - $2}')
r1=$(echo "$reads_delta" | awk '$1 == "main-r1" {print $4 - $2}')
r2=$(echo "$reads_delta" | awk '$1 == "main-r2" {print $4 - $2}')
check_status "$name" "$work/after-$name.txt"
stop_sg "$name"

# ---------------------------------------------------------------------------------------------
echo
echo "## shardgate replication benchmark"
echo
echo "pgbench -M prepared -c 8 -j 2 -T $DURATION, scale 1 (100,000 accounts), fresh data set per run;"
echo "$(nproc) CPUs; shardgate $build; PostgreSQL 15 default settings."
echo
echo "| configuration | TPS | ratio to PostgreSQL 15 (same workload) |"
echo "|---|---:|---:|"
printf "| PostgreSQL 15, TPC-B | %.1f | 1.00 |\n" "$pg_tpcb"
printf "| PostgreSQL 15, -S | %.1f | 1.00 |\n" "$pg_select"
printf "| shardgate, 0 replicas, TPC-B | %.1f | %s |\n" "${TPS[plain-tpcb]}" "$(ratio "${TPS[plain-tpcb]}" "$pg_tpcb")"
printf "| shardgate, 0 replicas, -S | %.1f | %s |\n" "${TPS[plain-select]}" "$(ratio "${TPS[plain-select]}" "$pg_select")"
for mode in asynchronous semi_synchronous synchronous; do
  label=$mode
  [ "$mode" = semi_synchronous ] && label="semi_synchronous (min_acks=1)"
  printf "| shardgate, 2 replicas (2:1), %s, TPC-B | %.1f | %s |\n" "$label" "${TPS[$mode-tpcb]}" "$(ratio "${TPS[$mode-tpcb]}" "$pg_tpcb")"
done
printf "| shardgate, 2 replicas (2:1), asynchronous, -S | %.1f | %s |\n" "${TPS[async-select]}" "$(ratio "${TPS[async-select]}" "$pg_select")"
echo
echo "Replication lag under TPC-B load (apply_p50/p99 from SHOW shardgate.replicas right after pgbench;"
echo "max lag from polling it every 0.5s during the run):"
echo
for mode in asynchronous semi_synchronous synchronous; do
  printf "%s" "${LAG[$mode]}"
done
echo
echo "Reads per database after the asynchronous -S run (weights main-r1:main-r2 = 2:1):"
echo
echo "$reads"
echo "- main-r1:main-r2 during the run = $(awk -v a="${r1:-0}" -v b="${r2:-0}" 'BEGIN {if (b > 0) printf "%.2f:1", a / b; else print "n/a"}')"
echo
echo "Checksums (accounts, history, tellers, branches) of primary.db, replica-1.db and replica-2.db"
echo "matched after every replicated TPC-B run; every pgbench run had 0 failed transactions."
