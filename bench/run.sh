#!/usr/bin/env bash
# The one-command benchmark: shardgate against PostgreSQL 15 and PgBouncer on this machine, in
# one run, on the same pgbench data set, written up as a Markdown report.
#
#   bench/run.sh [--quick]
#
# What it does, in order:
#   1. Checks for PostgreSQL 15 (initdb, pg_ctl, postgres, pgbench under
#      /usr/lib/postgresql/15/bin), psql and pg_isready, and pgbouncer; installs nothing, but
#      names the missing Debian packages and the apt-get command, and exits 1.
#   2. Builds shardgate (`cargo build --release`) and the idle-connection client
#      (`cargo build --release --example idle_connections`) unless SG_BIN / IDLE_BIN name ready
#      binaries; runs private copies, so a rebuild during the run does not swap them.
#   3. Starts, each on a free loopback port (from BASE_PORT up) in a temporary directory:
#        pg             PostgreSQL 15, initdb defaults (fsync = on, synchronous_commit = on),
#                       max_connections = 300; run as the postgres user when this runs as root
#        pg-commit-off  the same server, sessions with PGOPTIONS='-c synchronous_commit=off'
#        pgbouncer      PgBouncer -> pg, pool_mode = transaction, default_pool_size = 20
#        sg-1shard      shardgate, one shard, no replicas, [storage] synchronous = NORMAL
#        sg-1shard-full the same with synchronous = FULL
#        sg-async, sg-semi, sg-sync
#                       one shard, two replicas (weights 2:1), replication mode asynchronous /
#                       semi_synchronous (min_acks 1) / synchronous, synchronous = NORMAL
#        sg-4shards     four shards (hash) each with one replica (asynchronous); pgbench_accounts,
#                       _tellers, _branches and _history sharded by aid, tid, bid, aid
#      Every shardgate configuration has its own config file, data dir and process.
#   4. Loads `pgbench -i -s $SCALE` into each (into shardgate through the proxy), timed, and waits
#      for replicas to catch up. sg-4shards refuses pgbench -i's transaction around TRUNCATE and
#      COPY (a transaction may write on one shard), so when plain `pgbench -i` fails there the
#      same rows are loaded with `pgbench -i -I dt`, \copy (autocommit, split by shard) and
#      `pgbench -i -I p`; the refusal is recorded in the report.
#   5. Workloads (every pgbench run with -n, so no config vacuums or truncates differently), each
#      run on every configuration it applies to, interleaved (rep 1: A B C ..., rep 2: A B C ...)
#      REPS times:
#        select-only (-S) and TPC-B-like (builtin), -M simple and -M prepared, at CLIENTS clients
#          (-j 2, -j 1 for one client), DURATION seconds each
#        read/write: `SELECT abalance ... WHERE aid = :aid; UPDATE ... WHERE aid = :aid` as two
#          autocommit statements, 8 clients, -M prepared
#        SELECT count(*) FROM pgbench_accounts and SELECT aid, abalance FROM pgbench_accounts
#          ORDER BY abalance DESC, aid LIMIT 10: one client, QUERY_TX executions per run (mean ms)
#      The durability variants (pg-commit-off, sg-1shard-full) run the write workloads only.
#      sg-4shards runs TPC-B-like only if a probe shows it accepts that transaction.
#      PgBouncer 1.18 cannot keep protocol-level prepared statements in transaction pooling, so
#      its -M prepared runs use -M extended (marked in the report).
#      Latency: pgbench's average, and the 99th percentile of a -l --sampling-rate transaction log.
#      Before each run on a configuration with replicas, and after each of its write runs, the
#      harness waits until every replica reports lag_records = 0; right after each write run the
#      replicas' lag and apply_p50_ms / apply_p99_ms are read from SHOW shardgate.replicas.
#   6. Memory: VmRSS of every shardgate after the workloads; then a fresh sg-1shard process at 0
#      and IDLE_COUNTS idle, authenticated client connections (examples/idle_connections.rs), and
#      the average Pss / RSS of PG_BACKENDS idle PostgreSQL backends.
#   7. Writes bench/results/<date>-<TAG>[-quick].tsv (raw results, one row per measurement, kept
#      while running) and renders it with bench/report.sh into the .md beside it.
# Any pgbench run with a failed transaction or error, a hang, a server that does not start or
# that exits non-zero after SIGTERM aborts the run loudly with the log. The EXIT trap stops
# everything it started (shardgate with SIGTERM, the idle clients, pgbouncer, pg_ctl stop -m
# fast) and removes the temporary directory.
#
# Duration on the 2-CPU development machine: --quick (5 s runs at 8 clients, 159 pgbench runs)
# took 11.5 minutes. The full run (20 s runs at 1, 8 and 64 clients) is 339 pgbench runs, 99
# minutes of them measured time; with loads, catch-up waits and the memory step about 2 hours.
#
# Environment (defaults in brackets; --quick changes DURATION to 5 and CLIENTS to 8):
#   SG_BIN        shardgate binary to use instead of building one
#   IDLE_BIN      idle_connections binary to use instead of building one
#   SCALE [10]    pgbench scale (100,000 accounts each)
#   DURATION [20] seconds per pgbench -T run
#   CLIENTS ["1 8 64"]  client counts of the -S and TPC-B-like workloads
#   REPS [3]      repetitions of every run (the report shows the median)
#   QUERY_TX [5]  executions of each count(*) / ORDER BY query per run
#   CONFIGS       the configurations to run, a subset of the list above [all]; pg is required
#   WORKLOADS     which workload families to run: any of "select count top10 tpcb rw" [all]
#   IDLE_COUNTS ["1000 10000"]  idle connection totals for the memory measurement ("" skips it)
#   PG_BACKENDS [20]  idle PostgreSQL backends averaged for its per-backend memory
#   BASE_PORT [7400]  the first port tried for the servers (busy ones are skipped)
#   HANG_MARGIN [120] seconds beyond -T before a pgbench run counts as hung
#   CATCHUP_TIMEOUT [600]  seconds replicas may take to reach lag_records = 0
#   CALL_TIMEOUT [900]  bound for loads and the count(*) / ORDER BY runs
#   PGBIN [/usr/lib/postgresql/15/bin], PGBOUNCER [pgbouncer on PATH, else /usr/sbin/pgbouncer]
#   TAG [hostname -s]  machine tag in the report's file name; OUT / RESULTS override the paths
#   KEEP_WORK=1   keeps the temporary directory (configs, logs, data files)
# Smoke test of the harness itself: SCALE=1 DURATION=2 REPS=1 IDLE_COUNTS="100 1000" bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  *) echo "usage: bench/run.sh [--quick]" >&2; exit 2 ;;
esac
if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-5}
  CLIENTS=${CLIENTS:-8}
else
  DURATION=${DURATION:-20}
  CLIENTS=${CLIENTS:-1 8 64}
fi
SCALE=${SCALE:-10}
REPS=${REPS:-3}
QUERY_TX=${QUERY_TX:-5}
ALL_CONFIGS="pg pg-commit-off pgbouncer sg-1shard sg-1shard-full sg-async sg-semi sg-sync sg-4shards"
CONFIGS=${CONFIGS:-$ALL_CONFIGS}
WORKLOADS=${WORKLOADS-select count top10 tpcb rw}
IDLE_COUNTS=${IDLE_COUNTS-1000 10000}
PG_BACKENDS=${PG_BACKENDS:-20}
BASE_PORT=${BASE_PORT:-7400}
HANG_MARGIN=${HANG_MARGIN:-120}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-600}
CALL_TIMEOUT=${CALL_TIMEOUT:-900}
TAG=${TAG:-$(hostname -s 2>/dev/null || echo machine)}
suffix=""
[ "$QUICK" = 1 ] && suffix="-quick"
OUT=${OUT:-bench/results/$(date +%F)-$TAG$suffix.md}
RESULTS=${RESULTS:-${OUT%.md}.tsv}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# shellcheck source=bench/lib.sh
source bench/lib.sh

has() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }
has pg "$CONFIGS" || die "CONFIGS must include pg (every ratio is to PostgreSQL direct)"
for c in $CONFIGS; do has "$c" "$ALL_CONFIGS" || die "unknown configuration '$c' in CONFIGS (known: $ALL_CONFIGS)"; done

# ---------------------------------------------------------------------------------------------
# 1. Prerequisites: named, never installed behind the user's back.
missing=()
packages=()
need_pkg() { has "$1" "${packages[*]:-}" || packages+=("$1"); }
for b in initdb pg_ctl postgres pgbench; do
  [ -x "$PGBIN/$b" ] || { missing+=("$PGBIN/$b"); need_pkg postgresql; }
done
for t in psql pg_isready; do
  [ -x "$PGBIN/$t" ] || command -v "$t" >/dev/null || { missing+=("$t"); need_pkg postgresql-client; }
done
if [ -z "${PGBOUNCER:-}" ]; then
  PGBOUNCER=$(command -v pgbouncer 2>/dev/null || true)
  [ -z "$PGBOUNCER" ] && [ -x /usr/sbin/pgbouncer ] && PGBOUNCER=/usr/sbin/pgbouncer
fi
[ -n "$PGBOUNCER" ] && [ -x "$PGBOUNCER" ] || { missing+=(pgbouncer); need_pkg pgbouncer; }
[ -n "${SG_BIN:-}" ] && [ -n "${IDLE_BIN:-}" ] || command -v cargo >/dev/null \
  || { missing+=(cargo); }
if [ "${#missing[@]}" != 0 ]; then
  echo "bench/run.sh needs: ${missing[*]}" >&2
  if [ "${#packages[@]}" != 0 ]; then
    echo "They come with the Debian packages: ${packages[*]}. Install them with:" >&2
    echo "  apt-get update && apt-get install -y ${packages[*]}" >&2
  fi
  has cargo "${missing[*]}" && echo "cargo (Rust, https://rustup.rs) builds shardgate; or set SG_BIN and IDLE_BIN." >&2
  exit 1
fi
# Version 15's client tools, whatever /usr/bin's wrappers would pick.
export PATH="$PGBIN:$PATH"
# PostgreSQL and PgBouncer refuse to run as root.
RUNAS=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' system user to run PostgreSQL and PgBouncer (the postgresql package creates it)"
  RUNAS=(runuser -u postgres --)
fi
# 10,000 idle connections need as many descriptors in shardgate and in the client.
max_idle=0
for n in $IDLE_COUNTS; do [ "$n" -gt "$max_idle" ] && max_idle=$n; done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((max_idle + 1000)) ] \
  || die "ulimit -n is $(ulimit -n) (hard limit $(ulimit -Hn)); $max_idle idle connections need $((max_idle + 1000)). Lower IDLE_COUNTS or raise the limit."

work=$(mktemp -d /tmp/sg-bench.XXXXXX)
SG_PID=
declare -A SGPID PORT REPLICAS OPTS LOGF
IDLE_PIDS=()
IDLE_FDS=()
IDLE_SEQ=0
PGB_PIDFILE=$work/pgbouncer/pgbouncer.pid
# start_idle PORT USER DB COUNT : COUNT more idle connections from a new client process, held
# until stop_idle; waits for its "ready".
start_idle() {
  local port=$1 user=$2 db=$3 count=$4 k fd pid
  IDLE_SEQ=$((IDLE_SEQ + 1))
  k=$IDLE_SEQ
  mkfifo "$work/idle-$k.fifo"
  # Background jobs get /dev/null as stdin; the client holds its connections until stdin ends.
  "$IDLE_BIN" 127.0.0.1 "$port" "$user" "$PGPASSWORD" "$db" "$count" <"$work/idle-$k.fifo" >"$work/idle-$k.out" 2>&1 &
  pid=$!
  IDLE_PIDS+=("$pid")
  exec {fd}>"$work/idle-$k.fifo"
  IDLE_FDS+=("$fd")
  for _ in $(seq $((CALL_TIMEOUT * 5))); do
    grep -q "^ready $count\$" "$work/idle-$k.out" && return
    kill -0 "$pid" 2>/dev/null || { cat "$work/idle-$k.out" >&2; die "idle_connections ($count to port $port) failed"; }
    sleep 0.2
  done
  die "idle_connections did not open $count connections to port $port within ${CALL_TIMEOUT}s"
}
stop_idle() {
  local fd pid
  for fd in "${IDLE_FDS[@]}"; do exec {fd}>&-; done
  IDLE_FDS=()
  for pid in "${IDLE_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  IDLE_PIDS=()
}

cleanup() {
  local rc=$? pid c
  stop_idle || true
  for c in "${!SGPID[@]}"; do
    pid=${SGPID[$c]}
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  for c in "${!SGPID[@]}"; do
    pid=${SGPID[$c]}
    [ -n "$pid" ] || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ -s "$PGB_PIDFILE" ]; then kill -TERM "$(cat "$PGB_PIDFILE")" 2>/dev/null || true; fi
  if [ -d "$work/pg/data" ]; then "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$work/pg/data" stop -m fast >/dev/null 2>&1 || true; fi
  remove_work_and_exit "$rc"
}
trap cleanup EXIT
# Interrupted or killed: exit, so the EXIT trap stops the servers.
trap 'exit 130' INT
trap 'exit 143' TERM
# The postgres user must reach its directories inside.
chmod 755 "$work"
mkdir -p "$work/pg" "$work/pgbouncer" "$work/pgl" "$(dirname "$OUT")"
[ "${#RUNAS[@]}" = 0 ] || chown postgres "$work/pg" "$work/pgbouncer"
T_START=$SECONDS

now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN {printf "%.1f", (b - a) / 1e9}'; }
# row FIELDS... : one tab-separated row of the results file.
row() { (IFS=$'\t'; echo "$*") >>"$RESULTS"; }
: >"$RESULTS"

# alloc_port VAR : the next free loopback port from BASE_PORT up, into VAR.
next_port=$BASE_PORT
alloc_port() {
  while port_busy "$next_port"; do next_port=$((next_port + 1)); done
  printf -v "$1" '%s' "$next_port"
  next_port=$((next_port + 1))
}

# ---------------------------------------------------------------------------------------------
# 2. Binaries.
build=$(checkout_label)
if [ -z "${SG_BIN:-}" ]; then
  log "cargo build --release"
  cargo build --release -q
  SG_BIN=target/release/shardgate
  sg_origin="built from this checkout ($build)"
else
  sg_origin="SG_BIN=$SG_BIN (checkout at $build)"
fi
if [ -z "${IDLE_BIN:-}" ]; then
  log "cargo build --release --example idle_connections"
  cargo build --release -q --example idle_connections
  IDLE_BIN=target/release/examples/idle_connections
fi
# Private copies: others may rebuild target/release while this runs.
cp "$SG_BIN" "$work/shardgate"
cp "$IDLE_BIN" "$work/idle_connections"
SG_BIN=$work/shardgate
IDLE_BIN=$work/idle_connections

row fact date "$(date '+%F %T %Z')"
row fact reps "$REPS"
row fact mode "$([ "$QUICK" = 1 ] && echo "--quick" || echo full)"
row fact parameters "scale $SCALE ($((SCALE * 100000)) accounts), $DURATION s per run, clients: $CLIENTS, $REPS repetitions, $QUERY_TX executions per count(*)/ORDER BY run"
row fact machine "$(hostname -s 2>/dev/null || echo unknown) ($TAG)"
row fact cpus "$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
row fact ram "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
row fact kernel "$(uname -sr)"
row fact os "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" || echo unknown)"
row fact disk "$(df -hT "$work" | awk 'NR == 2 {print $2 " filesystem on " $1}') (temporary directory $work)"
row fact postgresql "$("$PGBIN/postgres" --version)"
row fact pgbench "$(pgbench --version)"
row fact pgbouncer "$("$PGBOUNCER" --version 2>&1 | head -n 1)"
row fact shardgate "$sg_origin"

# ---------------------------------------------------------------------------------------------
# 3. Servers.
export PGPASSWORD=app PGCONNECT_TIMEOUT=10

# conn CFG : the connection arguments of a configuration, into C.
conn() {
  case "$1" in
    pg | pg-commit-off) C=(-h 127.0.0.1 -p "${PORT[pg]}" -U postgres bench) ;;
    pgbouncer) C=(-h 127.0.0.1 -p "${PORT[pgbouncer]}" -U postgres bench) ;;
    *) C=(-h 127.0.0.1 -p "${PORT[$1]}" -U app app) ;;
  esac
}
# q CFG SQL : one psql call on a configuration, unaligned, tuples only; dies on an error.
q() {
  local out
  conn "$1"
  out=$(PGOPTIONS=${OPTS[$1]:-} timeout "$CALL_TIMEOUT" psql -X -q -A -t -v ON_ERROR_STOP=1 "${C[@]}" -c "$2" 2>"$work/q.err") \
    || { cat "$work/q.err" >&2; die "$1: '$2' failed"; }
  echo "$out"
}

alloc_port "PORT[pg]"
log "PostgreSQL 15 on 127.0.0.1:${PORT[pg]}"
"${RUNAS[@]}" "$PGBIN/initdb" -D "$work/pg/data" -A trust -U postgres >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log" >&2; die "initdb failed"; }
LOGF[pg]=$work/pg/postgresql.log
LOGF[pg-commit-off]=${LOGF[pg]}
# Default durability (fsync, synchronous_commit, full_page_writes untouched); room for 64
# clients, PgBouncer's pool and the idle backends measured at the end.
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$work/pg/data" -l "${LOGF[pg]}" -w -t 60 \
  -o "-p ${PORT[pg]} -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null \
  || { cat "${LOGF[pg]}" >&2; die "PostgreSQL did not start"; }
psql -X -q -h 127.0.0.1 -p "${PORT[pg]}" -U postgres -d postgres -c "CREATE DATABASE bench" >/dev/null \
  || die "CREATE DATABASE bench failed"
OPTS[pg]=""
OPTS[pg-commit-off]="-c synchronous_commit=off"
row fact pg-settings "$(q pg "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers', 'max_connections')")"
[ "$(q pg-commit-off "SHOW synchronous_commit")" = off ] || die "PGOPTIONS did not turn synchronous_commit off"
[ "$(q pg "SHOW synchronous_commit")" = on ] || die "PostgreSQL's default synchronous_commit is not on"

if has pgbouncer "$CONFIGS"; then
  alloc_port "PORT[pgbouncer]"
  log "PgBouncer on 127.0.0.1:${PORT[pgbouncer]}"
  LOGF[pgbouncer]=$work/pgbouncer/pgbouncer.log
  cat >"$work/pgbouncer/pgbouncer.ini" <<EOF
; bench/run.sh: transaction pooling in front of the benchmark's PostgreSQL
[databases]
bench = host=127.0.0.1 port=${PORT[pg]} dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${PORT[pgbouncer]}
unix_socket_dir =
auth_type = md5
auth_file = $work/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 200
logfile = ${LOGF[pgbouncer]}
pidfile = $PGB_PIDFILE
EOF
  echo '"postgres" "app"' >"$work/pgbouncer/userlist.txt"
  [ "${#RUNAS[@]}" = 0 ] || chown postgres "$work/pgbouncer"/*
  "${RUNAS[@]}" "$PGBOUNCER" -d -q "$work/pgbouncer/pgbouncer.ini" || die "pgbouncer did not start"
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "${PORT[pgbouncer]}" && break; sleep 0.2; done
  q pgbouncer "SELECT 1" >/dev/null
fi

# write_sg_config NAME SHARDS REPLICAS MODE SYNCHRONOUS : $work/NAME.toml; SHARDS 1 or 4, REPLICAS
# per shard (0, 1 or 2; two get weights 2:1).
write_sg_config() {
  local name=$1 shards=$2 replicas=$3 mode=$4 sync=$5
  alloc_port "PORT[$name]"
  REPLICAS[$name]=$((shards * replicas))
  SG_CONF=$work/$name.toml
  write_sg_toml "$SG_CONF" "bench/run.sh: $name" "${PORT[$name]}" "$work/data-$name" md5 \
    "$shards" "$replicas" "$mode" "$sync"
}

# start_cfg NAME : start_sg for a written config, remembering its process.
start_cfg() {
  SG_CONF=$work/$1.toml
  SG_LISTEN_PORT=${PORT[$1]}
  start_sg "$1"
  SGPID[$1]=$SG_PID
  LOGF[$1]=$SG_LOG
  SG_PID=
}
# stop_cfg NAME : stop_sg for a running config (SIGTERM, exit status 0 required).
stop_cfg() {
  SG_PID=${SGPID[$1]}
  SG_LOG=${LOGF[$1]}
  SGPID[$1]=
  stop_sg "$1"
}
# caught_up NAME : waits for the config's replicas (if any) to report lag_records = 0.
caught_up() {
  [ "${REPLICAS[$1]:-0}" != 0 ] || return 0
  conn "$1"
  SG=("${C[@]}")
  SG_LOG=${LOGF[$1]}
  wait_caught_up "$1" "${REPLICAS[$1]}"
}

for c in $CONFIGS; do
  case "$c" in
    sg-1shard) write_sg_config "$c" 1 0 asynchronous NORMAL ;;
    sg-1shard-full) write_sg_config "$c" 1 0 asynchronous FULL ;;
    sg-async) write_sg_config "$c" 1 2 asynchronous NORMAL ;;
    sg-semi) write_sg_config "$c" 1 2 semi_synchronous NORMAL ;;
    sg-sync) write_sg_config "$c" 1 2 synchronous NORMAL ;;
    sg-4shards) write_sg_config "$c" 4 1 asynchronous NORMAL ;;
    *) continue ;;
  esac
  start_cfg "$c"
done

# What each configuration is, and the PostgreSQL configuration with the same durability.
row config pg "PostgreSQL 15 direct, default settings" "fsync=on, synchronous_commit=on: a commit is flushed to disk before it is acknowledged" pg
row config pg-commit-off "PostgreSQL 15 direct, synchronous_commit=off per session (PGOPTIONS)" "the WAL is flushed by the WAL writer within ~3 x wal_writer_delay (600 ms): an OS crash or power loss (and a PostgreSQL crash) may lose the last commits, never corrupts" pg-commit-off
row config pgbouncer "PgBouncer 1.18 (transaction pooling, default_pool_size 20) -> pg" "as pg" pg
row config sg-1shard "shardgate, 1 shard, no replicas" "SQLite WAL, synchronous=NORMAL (shardgate's default): the WAL is fsynced at checkpoints only; a power loss or OS crash may lose the last commits, never corrupts; a shardgate crash loses nothing" pg-commit-off
row config sg-1shard-full "shardgate, 1 shard, no replicas, [storage] synchronous = FULL" "SQLite WAL, synchronous=FULL: the WAL is fsynced at every commit" pg
row config sg-async "shardgate, 1 shard + 2 replicas (2:1), asynchronous" "as sg-1shard on the primary; replicas are files on the same disk" pg-commit-off
row config sg-semi "shardgate, 1 shard + 2 replicas (2:1), semi_synchronous, min_acks 1" "as sg-1shard; a commit is acknowledged once 1 replica applied it (or after ack_timeout)" pg-commit-off
row config sg-sync "shardgate, 1 shard + 2 replicas (2:1), synchronous" "as sg-1shard; a commit is acknowledged once every healthy replica applied it" pg-commit-off
row config sg-4shards "shardgate, 4 shards (hash) + 1 replica each, asynchronous" "as sg-1shard, per shard" pg-commit-off

# ---------------------------------------------------------------------------------------------
# 4. Loads.
# pgbench_init CFG ARGS... : pgbench -i against a configuration; returns pgbench's status, the
# log is $work/init-CFG.log.
pgbench_init() {
  local cfg=$1
  shift
  conn "$cfg"
  timeout "$CALL_TIMEOUT" pgbench -i -s "$SCALE" "$@" "${C[@]}" >>"$work/init-$cfg.log" 2>&1
}
check_rows() {
  local n
  n=$(q "$1" "SELECT count(*) FROM pgbench_accounts")
  [ "$n" = $((SCALE * 100000)) ] || die "$1: pgbench_accounts holds $n rows after the load, expected $((SCALE * 100000))"
}
# data_mb CFG : the size of the loaded database in MB (PostgreSQL: pg_database_size; shardgate:
# the primary files and their WAL, from SHOW shardgate.shards), to show how much a scan reads.
data_mb() {
  if [ "$1" = pg ]; then
    q pg "SELECT round(pg_database_size('bench') / 1048576.0, 1)"
  else
    q "$1" "SHOW shardgate.shards" | awk -F'|' '{b += $6} END {printf "%.1f\n", b / 1048576}'
  fi
}

t0=$(now_ns)
pgbench_init pg -q || { cat "$work/init-pg.log" >&2; die "pg: pgbench -i failed"; }
secs=$(secs_since "$t0")
check_rows pg
row load pg "$secs" "" "pgbench -i -s $SCALE ($(grep -m1 '^done in' "$work/init-pg.log" | sed 's/\.$//'))" "$(data_mb pg)"
q pg CHECKPOINT >/dev/null
log "pg: loaded"

for c in $CONFIGS; do
  [[ $c == sg-* ]] || continue
  SG_LOG=${LOGF[$c]}
  t0=$(now_ns)
  if pgbench_init "$c" -q; then
    method="pgbench -i -s $SCALE through the proxy ($(grep -m1 '^done in' "$work/init-$c.log" | sed 's/\.$//'))"
  else
    [ "$c" = sg-4shards ] || { cat "$work/init-$c.log" >&2; die "$c: pgbench -i failed"; }
    # Sharded: pgbench -i wraps TRUNCATE and COPY in one transaction, which writes on every
    # shard. Load the rows pgbench would generate (PostgreSQL 15's client-side generator: filler
    # '' for accounts, NULL for tellers and branches) with autocommit statements instead.
    row note "sg-4shards: plain \`pgbench -i\` fails: $(grep -m1 -i 'error' "$work/init-$c.log")"
    log "$c: pgbench -i refused; loading with pgbench -i -I dt, \\copy and pgbench -i -I p"
    t0=$(now_ns)
    pgbench_init "$c" -I dt || { cat "$work/init-$c.log" >&2; die "$c: pgbench -i -I dt failed"; }
    awk -v n=$((SCALE * 100000)) 'BEGIN {for (i = 1; i <= n; i++) printf "%d\t%d\t0\t\n", i, int((i - 1) / 100000) + 1}' >"$work/accounts.tsv"
    awk -v n=$((SCALE * 10)) 'BEGIN {for (i = 1; i <= n; i++) printf "%d\t%d\t0\t\\N\n", i, int((i - 1) / 10) + 1}' >"$work/tellers.tsv"
    awk -v n="$SCALE" 'BEGIN {for (i = 1; i <= n; i++) printf "%d\t0\t\\N\n", i}' >"$work/branches.tsv"
    q "$c" "\\copy pgbench_branches from '$work/branches.tsv'" >/dev/null
    q "$c" "\\copy pgbench_tellers from '$work/tellers.tsv'" >/dev/null
    q "$c" "\\copy pgbench_accounts from '$work/accounts.tsv'" >/dev/null
    pgbench_init "$c" -I p || { cat "$work/init-$c.log" >&2; die "$c: pgbench -i -I p failed"; }
    method="pgbench -i -I dt, \\copy of the same rows (autocommit), pgbench -i -I p (primary keys); no vacuum step"
    rm -f "$work/accounts.tsv"
  fi
  t1=$(now_ns)
  caught_up "$c"
  catchup=""
  [ "${REPLICAS[$c]}" != 0 ] && catchup=$(secs_since "$t1")
  secs=$(secs_since "$t0")
  check_rows "$c"
  row load "$c" "$secs" "$catchup" "$method" "$(data_mb "$c")"
  # After the timing: pgbench -i's vacuum step on its own, as a check.
  if [[ $method == *"no vacuum step"* ]] && ! pgbench_init "$c" -I v; then
    row note "sg-4shards: \`pgbench -i -I v\` (VACUUM ANALYZE of the pgbench tables) fails: $(grep -i 'error' "$work/init-$c.log" | tail -n 1)"
  fi
  log "$c: loaded"
done

# The 4-shard configuration takes the TPC-B-like transaction only if it can write three shards
# in one transaction; probe it rather than assume.
TPCB_4SHARDS=0
if has sg-4shards "$CONFIGS"; then
  conn sg-4shards
  if timeout "$CALL_TIMEOUT" pgbench -n -M simple -c 1 -j 1 -t 50 "${C[@]}" >"$work/probe-tpcb.log" 2>&1 \
    && ! grep -qiE 'error|aborted' "$work/probe-tpcb.log"; then
    TPCB_4SHARDS=1
  else
    row note "sg-4shards: not run on the TPC-B-like workloads, shardgate refuses the transaction: $(grep -m1 -i 'error' "$work/probe-tpcb.log" | sed 's/^pgbench: error: //')"
  fi
  caught_up sg-4shards
fi

# ---------------------------------------------------------------------------------------------
# 5. Workloads.
cat >"$work/rw.sql" <<'EOF'
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
EOF
echo "SELECT count(*) FROM pgbench_accounts;" >"$work/count.sql"
echo "SELECT aid, abalance FROM pgbench_accounts ORDER BY abalance DESC, aid LIMIT 10;" >"$work/top10.sql"

# The configurations a workload family runs on, in report order.
READ_CONFIGS=()
WRITE_CONFIGS=()
for c in $ALL_CONFIGS; do
  has "$c" "$CONFIGS" || continue
  WRITE_CONFIGS+=("$c")
  case "$c" in pg-commit-off | sg-1shard-full) ;; *) READ_CONFIGS+=("$c") ;; esac
done
TPCB_CONFIGS=()
for c in "${WRITE_CONFIGS[@]}"; do
  [ "$c" = sg-4shards ] && [ "$TPCB_4SHARDS" = 0 ] && continue
  TPCB_CONFIGS+=("$c")
done

# p99_ms FILES... : the 99th percentile of the latency column (3rd, microseconds) of pgbench -l
# logs, in ms; NA without samples.
p99_ms() {
  { cat "$@" 2>/dev/null || true; } | awk '{print $3}' | sort -n \
    | awk '{v[NR] = $1} END {if (NR == 0) {print "NA"; exit} i = int(NR * 0.99); if (i < NR * 0.99) i++; if (i < 1) i = 1; printf "%.3f\n", v[i] / 1000}'
}

# lag_after WL CFG REP : the replicas' lag and apply percentiles right after a write run;
# unhealthy databases or errors are recorded as notes.
lag_after() {
  local wl=$1 cfg=$2 rep=$3 snap=$work/after.txt bad
  conn "$cfg"
  SG=("${C[@]}")
  show_replicas >"$snap" || die "$cfg: SHOW shardgate.replicas failed"
  while read -r name lr ls p50 p99; do
    row lag "$wl" "$cfg" "$rep" "$name" "$lr" "$ls" "$p50" "$p99"
  done < <(cols "$snap" role name lag_records lag_seconds apply_p50_ms apply_p99_ms | awk '$1 == "replica" {print $2, $3, $4, $5, $6}')
  bad=$(cols "$snap" name healthy errors status | awk '$2 != "t" || $3 != 0 || $4 != "ok"' | paste -sd';')
  if [ -n "$bad" ]; then
    log "$cfg: SHOW shardgate.replicas after $wl rep $rep reports: $bad"
    row note "$cfg after $wl rep $rep: SHOW shardgate.replicas reported (name healthy errors status): $bad"
  fi
}

# measure WL KIND MODE CLIENTS RATE CONFIGS -- ARGS... : the workload on every configuration,
# REPS interleaved rounds. KIND is tps (-T runs, sampled latency log) or latency (QUERY_TX
# executions by one client). Appends run rows: tps, mean ms, p99 ms, transactions, mode used.
measure() {
  local wl=$1 kind=$2 mode=$3 clients=$4 rate=$5 cfgs=$6 threads=2 rep cfg m label out tps lat p99 tx writes=0
  shift 7
  [ "$clients" = 1 ] && threads=1
  case "$wl" in tpcb* | rw*) writes=1 ;; esac
  for rep in $(seq "$REPS"); do
    for cfg in $cfgs; do
      m=$mode
      # PgBouncer 1.18 in transaction pooling cannot keep prepared statements.
      [ "$cfg" = pgbouncer ] && [ "$mode" = prepared ] && m=extended
      caught_up "$cfg"
      conn "$cfg"
      SG_LOG=${LOGF[$cfg]}
      label="$wl-$cfg-$rep"
      rm -f "$work/pgl/tx".*
      if [ "$kind" = tps ]; then
        PGOPTIONS=${OPTS[$cfg]:-} check_pgbench "$label" $((DURATION + HANG_MARGIN)) -n -M "$m" -c "$clients" -j "$threads" \
          -T "$DURATION" -l --sampling-rate="$rate" --log-prefix="$work/pgl/tx" "$@" "${C[@]}"
        p99=$(p99_ms "$work/pgl/tx".*)
      else
        PGOPTIONS=${OPTS[$cfg]:-} check_pgbench "$label" "$CALL_TIMEOUT" -n -M "$m" -c 1 -j 1 -t "$QUERY_TX" "$@" "${C[@]}"
        p99=NA
      fi
      rm -f "$work/pgl/tx".*
      out=$work/pgbench-$label.log
      tps=$(awk '/^tps = / {print $3}' "$out")
      lat=$(awk '/^latency average = / {print $4}' "$out")
      tx=$(awk '/^number of transactions actually processed:/ {print $6}' "$out")
      row run "$wl" "$cfg" "$rep" "$tps" "$lat" "$p99" "$tx" "$m"
      if [ "$writes" = 1 ] && [ "${REPLICAS[$cfg]:-0}" != 0 ]; then
        lag_after "$wl" "$cfg" "$rep"
        caught_up "$cfg"
      fi
    done
  done
}

# workload WL KIND MODE CLIENTS RATE CONFIGS TITLE -- ARGS... : describes it in the results, runs it.
workload() {
  local wl=$1 kind=$2 mode=$3 clients=$4 rate=$5 cfgs=$6 title=$7 threads=2 cmd
  shift 8
  [ "$clients" = 1 ] && threads=1
  if [ "$kind" = tps ]; then
    cmd="pgbench -n -M $mode -c $clients -j $threads -T $DURATION${*:+ $*}"
  else
    cmd="pgbench -n -M $mode -c 1 -j 1 -t $QUERY_TX${*:+ $*}"
  fi
  cmd=${cmd//"$work/"/}
  row workload "$wl" "$kind" "$title" "$cmd"
  log "workload $wl: $cmd on: $cfgs"
  measure "$wl" "$kind" "$mode" "$clients" "$rate" "$cfgs" -- "$@"
}

# Sampling: select-only runs reach tens of thousands of TPS, 10% of them is plenty for a p99.
for family in $WORKLOADS; do
  case "$family" in
    select)
      for mode in simple prepared; do
        for c in $CLIENTS; do
          workload "select-$mode-c$c" tps "$mode" "$c" 0.1 "${READ_CONFIGS[*]}" "select-only (-S), -M $mode, $c client$([ "$c" = 1 ] || echo s)" -- -S
        done
      done ;;
    count)
      workload count latency simple 1 1 "${READ_CONFIGS[*]}" "SELECT count(*) FROM pgbench_accounts" -- -f "$work/count.sql" ;;
    top10)
      workload top10 latency simple 1 1 "${READ_CONFIGS[*]}" "SELECT aid, abalance FROM pgbench_accounts ORDER BY abalance DESC, aid LIMIT 10" -- -f "$work/top10.sql" ;;
    tpcb)
      for mode in simple prepared; do
        for c in $CLIENTS; do
          workload "tpcb-$mode-c$c" tps "$mode" "$c" 1 "${TPCB_CONFIGS[*]}" "TPC-B-like (builtin), -M $mode, $c client$([ "$c" = 1 ] || echo s)" --
        done
      done ;;
    rw)
      workload rw-prepared-c8 tps prepared 8 1 "${WRITE_CONFIGS[*]}" "read/write: SELECT + UPDATE of one account (autocommit), -M prepared, 8 clients" -- -f "$work/rw.sql" ;;
    *) die "unknown workload family '$family' in WORKLOADS (known: select count top10 tpcb rw)" ;;
  esac
done

# ---------------------------------------------------------------------------------------------
# 6. Memory.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
for c in $CONFIGS; do
  [[ $c == sg-* ]] || continue
  row mem "$c after the workloads (VmRSS)" 0 "$(rss_kb "${SGPID[$c]}")" total
  stop_cfg "$c"
done

if [ -n "$IDLE_COUNTS" ] && has sg-1shard "$CONFIGS"; then
  log "memory: a fresh sg-1shard process, then $IDLE_COUNTS idle connections"
  start_cfg sg-1shard
  sleep 2
  row mem "sg-1shard fresh (VmRSS)" 0 "$(rss_kb "${SGPID[sg-1shard]}")" total
  held=0
  for n in $IDLE_COUNTS; do
    start_idle "${PORT[sg-1shard]}" app app $((n - held))
    held=$n
    sleep 2
    row mem "sg-1shard fresh (VmRSS)" "$n" "$(rss_kb "${SGPID[sg-1shard]}")" total
    log "memory: sg-1shard with $n idle connections: $(rss_kb "${SGPID[sg-1shard]}") kB"
  done
  stop_idle
  stop_cfg sg-1shard
fi
if [ -n "$IDLE_COUNTS" ]; then
  log "memory: $PG_BACKENDS idle PostgreSQL backends"
  start_idle "${PORT[pg]}" postgres bench "$PG_BACKENDS"
  sleep 1
  pss=0 rss=0 priv=0 n=0
  for pid in $(q pg "SELECT pid FROM pg_stat_activity WHERE application_name = 'idle_connections'"); do
    read -r p r v < <(awk '/^Pss:/ {p = $2} /^Rss:/ {r = $2} /^Private_(Clean|Dirty):/ {v += $2} END {print p, r, v}' "/proc/$pid/smaps_rollup")
    pss=$((pss + p)) rss=$((rss + r)) priv=$((priv + v)) n=$((n + 1))
  done
  stop_idle
  [ "$n" -gt 0 ] || die "found no idle PostgreSQL backends"
  row mem "PostgreSQL idle backend, Pss" "$n" $((pss / n)) each
  row mem "PostgreSQL idle backend, private memory" "$n" $((priv / n)) each
  row mem "PostgreSQL idle backend, RSS" "$n" $((rss / n)) each
fi

# ---------------------------------------------------------------------------------------------
# 7. Report.
row fact elapsed "$(( (SECONDS - T_START) / 60 )) min $(( (SECONDS - T_START) % 60 )) s"
bench/report.sh "$RESULTS" >"$OUT"
log "results: $RESULTS"
log "report:  $OUT"
