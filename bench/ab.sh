#!/usr/bin/env bash
# A/B of two shardgate binaries against PostgreSQL 15 in one run, on one pgbench data set: what
# a change costs on the hot path, and what each [replication] read_consistency level costs and
# how many reads the replicas serve.
#
#   BASE_BIN=old/shardgate NEW_BIN=new/shardgate bench/ab.sh
#
# Configurations (each its own process, data dir and port; scale SCALE, loaded through the proxy):
#   pg            PostgreSQL 15 direct, default settings (run as the postgres user under root)
#   base-1shard   BASE_BIN, one shard, no replicas
#   new-1shard    NEW_BIN, one shard, no replicas
#   base-semi     BASE_BIN, one shard + 2 replicas (2:1), semi_synchronous, min_acks 1
#   new-strong, new-session, new-eventual
#                 NEW_BIN, the same with read_consistency = strong / session / eventual
# Workloads, interleaved (rep 1: every configuration, rep 2: ...) REPS times, CLIENTS clients:
#   select-prepared, select-simple, tpcb-prepared, tpcb-simple: pgbench -S / builtin TPC-B-like
#   select-under-writes: -S -M prepared while a second pgbench runs TPC-B-like at WRITE_RATE
#     transactions per second with 2 clients (configurations with replicas only, and pg)
# For the replicated configurations, the share of reads the replicas served during each -S run
# (the `reads` counters of SHOW shardgate.replicas before and after).
# Output: a Markdown table on stdout (median TPS, ratio to pg and to base) and the raw TSV in
# $work/ab.tsv (kept with KEEP_WORK=1).
# Environment: BASE_BIN, NEW_BIN (required), SCALE [1], DURATION [10], REPS [3], CLIENTS [8],
#   WORKLOADS [all five], WRITE_RATE [200], BASE_PORT [7600], PGBIN [/usr/lib/postgresql/15/bin], HANG_MARGIN [120].
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

: "${BASE_BIN:?BASE_BIN must name the baseline shardgate binary}"
: "${NEW_BIN:?NEW_BIN must name the shardgate binary under test}"
SCALE=${SCALE:-1}
DURATION=${DURATION:-10}
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-8}
WRITE_RATE=${WRITE_RATE:-200}
BASE_PORT=${BASE_PORT:-7600}
HANG_MARGIN=${HANG_MARGIN:-120}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=bench/lib.sh
source bench/lib.sh

for b in initdb pg_ctl postgres pgbench psql; do
  [ -x "$PGBIN/$b" ] || die "$PGBIN/$b is missing (apt-get install -y postgresql postgresql-client)"
done
export PATH="$PGBIN:$PATH" PGPASSWORD=app PGCONNECT_TIMEOUT=10
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --)

work=$(mktemp -d /tmp/sg-ab.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/pg"
[ "${#RUNAS[@]}" = 0 ] || chown postgres "$work/pg"
cp "$BASE_BIN" "$work/base-shardgate"
cp "$NEW_BIN" "$work/new-shardgate"
declare -A PID PORT BIN REPLICAS
SG_PID=
cleanup() {
  local rc=$? c
  for c in "${!PID[@]}"; do kill -TERM "${PID[$c]}" 2>/dev/null || true; done
  sleep 1
  for c in "${!PID[@]}"; do kill -KILL "${PID[$c]}" 2>/dev/null || true; done
  if [ -d "$work/pg/data" ]; then "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$work/pg/data" stop -m fast >/dev/null 2>&1 || true; fi
  remove_work_and_exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

next_port=$BASE_PORT
alloc_port() {
  while port_busy "$next_port"; do next_port=$((next_port + 1)); done
  printf -v "$1" '%s' "$next_port"
  next_port=$((next_port + 1))
}
conn() {
  if [ "$1" = pg ]; then C=(-h 127.0.0.1 -p "${PORT[pg]}" -U postgres bench); else C=(-h 127.0.0.1 -p "${PORT[$1]}" -U app app); fi
}

alloc_port "PORT[pg]"
"${RUNAS[@]}" "$PGBIN/initdb" -D "$work/pg/data" -A trust -U postgres >"$work/initdb.log" 2>&1 || die "initdb failed"
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -t 60 \
  -o "-p ${PORT[pg]} -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null \
  || { cat "$work/pg/log" >&2; die "PostgreSQL did not start"; }
psql -X -q -h 127.0.0.1 -p "${PORT[pg]}" -U postgres -d postgres -c "CREATE DATABASE bench" >/dev/null

# sg_config NAME WHICH REPLICAS [READ_CONSISTENCY]
sg_config() {
  local name=$1 which=$2 replicas=$3 consistency=${4:-}
  alloc_port "PORT[$name]"
  BIN[$name]=$work/$which-shardgate
  REPLICAS[$name]=$((replicas))
  SG_BIN=${BIN[$name]}
  SG_REPLICATION_EXTRA=""
  [ -n "$consistency" ] && SG_REPLICATION_EXTRA="read_consistency = \"$consistency\""
  write_sg_toml "$work/$name.toml" "bench/ab.sh: $name" "${PORT[$name]}" "$work/data-$name" md5 1 "$replicas" semi_synchronous NORMAL
  SG_CONF=$work/$name.toml SG_LISTEN_PORT=${PORT[$name]}
  start_sg "$name"
  PID[$name]=$SG_PID
  SG_PID=
}
SG_CONFIGS="base-1shard new-1shard base-semi new-strong new-session new-eventual"
sg_config base-1shard base 0
sg_config new-1shard new 0
sg_config base-semi base 2
sg_config new-strong new 2 strong
sg_config new-session new 2 session
sg_config new-eventual new 2 eventual

for c in pg $SG_CONFIGS; do
  conn "$c"
  log "$c: pgbench -i -s $SCALE"
  timeout 900 pgbench -i -q -s "$SCALE" "${C[@]}" >"$work/init-$c.log" 2>&1 || { cat "$work/init-$c.log" >&2; die "$c: pgbench -i failed"; }
done

RESULTS=$work/ab.tsv
: >"$RESULTS"
# replica_reads CFG : "replica_reads all_reads" summed over SHOW shardgate.replicas.
replica_reads() {
  conn "$1"
  SG=("${C[@]}")
  show_replicas >"$work/show.txt"
  cols "$work/show.txt" role reads | awk '{ all += $2; if ($1 == "replica") rep += $2 } END { print rep + 0, all + 0 }'
}
# measure WORKLOAD CFG REP
measure() {
  local w=$1 c=$2 rep=$3 tps before="" after bg=""
  conn "$c"
  if [ "$c" != pg ] && [ "${REPLICAS[$c]}" != 0 ]; then
    SG=("${C[@]}") SG_LOG=$work/$c.log
    wait_caught_up "$c" "${REPLICAS[$c]}"
    before=$(replica_reads "$c")
  fi
  case "$w" in
    select-prepared) tps=$(run_pgbench "$c-$w-$rep" prepared "$CLIENTS" 2 -n -S "${C[@]}") ;;
    select-simple) tps=$(run_pgbench "$c-$w-$rep" simple "$CLIENTS" 2 -n -S "${C[@]}") ;;
    tpcb-prepared) tps=$(run_pgbench "$c-$w-$rep" prepared "$CLIENTS" 2 -n "${C[@]}") ;;
    tpcb-simple) tps=$(run_pgbench "$c-$w-$rep" simple "$CLIENTS" 2 -n "${C[@]}") ;;
    select-under-writes)
      pgbench -n -M prepared -c 2 -j 1 -R "$WRITE_RATE" -T $((DURATION + 2)) "${C[@]}" >"$work/bg-$c-$rep.log" 2>&1 &
      bg=$!
      tps=$(run_pgbench "$c-$w-$rep" prepared "$CLIENTS" 2 -n -S "${C[@]}")
      wait "$bg" || { cat "$work/bg-$c-$rep.log" >&2; die "$c: the background write load failed"; }
      ;;
  esac
  local share=""
  if [ -n "${before:-}" ]; then
    after=$(replica_reads "$c")
    share=$(awk -v b="$before" -v a="$after" 'BEGIN { split(b, x, " "); split(a, y, " "); d = y[2] - x[2]; if (d > 0) printf "%.3f", (y[1] - x[1]) / d }')
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "$rep" "$tps" "$share" >>"$RESULTS"
}

workloads=${WORKLOADS:-select-prepared select-simple tpcb-prepared tpcb-simple select-under-writes}
configs_for() {
  case "$1" in
    select-prepared) echo "pg $SG_CONFIGS" ;;
    select-simple | tpcb-simple) echo "pg base-1shard new-1shard" ;;
    tpcb-prepared) echo "pg base-1shard new-1shard base-semi new-strong" ;;
    select-under-writes) echo "pg base-semi new-strong new-session new-eventual" ;;
  esac
}
for rep in $(seq "$REPS"); do
  for w in $workloads; do
    for c in $(configs_for "$w"); do measure "$w" "$c" "$rep"; done
  done
done

# The report: median TPS per workload and configuration, ratios, median replica share.
echo "| workload | configuration | median TPS | / pg | / base | replica share of reads |"
echo "|---|---|---:|---:|---:|---:|"
for w in $workloads; do
  pg_tps=$(awk -F'\t' -v w="$w" '$1 == w && $2 == "pg" {print $4}' "$RESULTS" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  for c in $(configs_for "$w"); do
    med=$(awk -F'\t' -v w="$w" -v c="$c" '$1 == w && $2 == c {print $4}' "$RESULTS" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    share=$(awk -F'\t' -v w="$w" -v c="$c" '$1 == w && $2 == c && $5 != "" {print $5}' "$RESULTS" | sort -n | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]}')
    base=base-1shard
    case "$c" in *semi | new-strong | new-session | new-eventual) base=base-semi ;; esac
    base_tps=$(awk -F'\t' -v w="$w" -v c="$base" '$1 == w && $2 == c {print $4}' "$RESULTS" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    vs_base=""
    [ -n "$base_tps" ] && [ "$c" != pg ] && vs_base=$(ratio "$med" "$base_tps")
    echo "| $w | $c | $med | $(ratio "$med" "$pg_tps") | $vs_base | ${share:-} |"
  done
done
cp "$RESULTS" "${AB_TSV:-/dev/null}" 2>/dev/null || true
