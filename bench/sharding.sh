#!/usr/bin/env bash
# Sharding benchmark: shardgate with 1 shard and with 4 shards (hash strategy) on the same
# machine, in the same run, each configuration on its own config file, data dir and server
# process (stopped with SIGTERM and required to exit 0):
#   1. Single-key statements on a sharded table kv (k INT PRIMARY KEY, v INT, pad TEXT), 100,000
#      rows loaded through the proxy with COPY, `pgbench -n -M prepared -c 8 -j 2 -T $DURATION
#      -f SCRIPT` with k = random(1, 100000):
#        read-only:  SELECT v FROM kv WHERE k = :k;
#        read-write: the SELECT, then UPDATE kv SET v = v + 1 WHERE k = :k; (two autocommit
#                    statements, no BEGIN/END)
#      TPS for 1 and 4 shards and the 4/1 ratio. After the read-write run, sum(v) must have grown
#      by exactly the number of transactions pgbench reports (no lost or doubled update).
#   2. Scatter-gather over 1,000,000 rows: big (id INT PRIMARY KEY, val INT, note TEXT), sharded by
#      id, val = (id * 7919) % 1000003 (distinct values, so the top 10 is unique), no index on
#      val; loaded through the proxy with COPY on 4 shards, and from the same data file with the
#      sqlite3 CLI's .import into ONE plain SQLite file (WAL, default cache). Each of
#        SELECT count(*) FROM big
#        SELECT id, val FROM big ORDER BY val DESC LIMIT 10
#      runs $RUNS times in one session on each side (psql \timing through the proxy, sqlite3 .timer
#      on the plain file: both measure the statement, not the client's start-up); the medians and
#      the ratio are reported, and every run's result must equal the plain file's. The same load
#      and queries on 1 shard through the proxy are reported beside them, for reference.
# Row counts per shard are read with the /* shardgate:shard=NAME */ hint and must add up. Any
# failed pgbench transaction, wrong result, hang or non-zero exit after SIGTERM fails the script.
# Installs the PostgreSQL client tools (psql, pgbench, pg_isready) and sqlite3 with apt when
# missing. Prints a markdown table at the end.
#
# Environment: DURATION (seconds per pgbench run, default 20), RUNS (timed runs per query,
# default 5), SG_PORT (first shardgate port, default 6481; each configuration takes the next one),
# KEEP_WORK=1 keeps the temporary directory (logs, configs, data files) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
DURATION=${DURATION:-20}
RUNS=${RUNS:-5}
SG_PORT=${SG_PORT:-6481}
KV_ROWS=100000
BIG_ROWS=1000000
SHARDS_MANY=4
# pgbench runs get this much longer than -T before they count as hung.
HANG_MARGIN=${HANG_MARGIN:-120}
# Bound for every other client call (loads, timed queries, checks).
CALL_TIMEOUT=${CALL_TIMEOUT:-900}

packages=()
if ! command -v pgbench >/dev/null || ! command -v psql >/dev/null || ! command -v pg_isready >/dev/null; then
  # On Debian, pgbench ships with the server package.
  packages+=(postgresql postgresql-client)
fi
command -v sqlite3 >/dev/null || packages+=(sqlite3)
if [ "${#packages[@]}" != 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

now_ns() { date +%s%N; }
ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN {printf "%.0f", (b - a) / 1e6}'; }

# shellcheck source=bench/lib.sh
source bench/lib.sh

work=$(mktemp -d)
SG_PID=
cleanup() {
  local rc=$?
  if [ -n "$SG_PID" ] && kill -0 "$SG_PID" 2>/dev/null; then
    kill -TERM "$SG_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SG_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SG_PID" 2>/dev/null || true
  fi
  remove_work_and_exit "$rc"
}
trap cleanup EXIT

for port in $(seq "$SG_PORT" $((SG_PORT + 3))); do
  port_busy "$port" && die "port $port is already in use (set SG_PORT)"
done

private_shardgate
build=$(checkout_label)
export PGPASSWORD=app PGCONNECT_TIMEOUT=10
next_port=$SG_PORT

# ---------------------------------------------------------------------------------------------
# shardgate helpers

# write_config NAME SHARDS : writes $work/NAME.toml with SHARDS shards (hash strategy; kv sharded
# by k and big by id, the same [sharding] section for 1 shard), sets SG_CONF, SG_DATA,
# SG_LISTEN_PORT and SG_SHARDS (the shard names).
write_config() {
  local name=$1 shards=$2 i
  SG_CONF=$work/$name.toml
  SG_DATA=$work/data-$name
  SG_LISTEN_PORT=$next_port
  next_port=$((next_port + 1))
  SG_SHARDS=()
  {
    cat <<EOF
# bench/sharding.sh: $name
[server]
listen = "127.0.0.1:$SG_LISTEN_PORT"
database = "app"
data_dir = "$SG_DATA"
auth = "scram-sha-256"
shutdown_timeout = "10s"

[storage]
synchronous = "NORMAL"
busy_timeout = "5s"
read_connections = 4

[sharding]
strategy = "hash"
tables = [{ name = "kv", key = "k" }, { name = "big", key = "id" }]

[[users]]
name = "app"
password = "app"
EOF
    for i in $(seq "$shards"); do
      printf '\n[[shards]]\nname = "shard-%d"\nprimary = "shard-%d/primary.db"\n' "$i" "$i"
    done
  } >"$SG_CONF"
  for i in $(seq "$shards"); do SG_SHARDS+=("shard-$i"); done
  "$SG_BIN" check-config --config "$SG_CONF" >"$work/$name.check" 2>&1 \
    || { cat "$work/$name.check" >&2; die "check-config rejected $SG_CONF"; }
}


# sgq ARGS... : psql through the proxy, unaligned, tuples only, stops at the first error.
sgq() {
  timeout "$CALL_TIMEOUT" psql -X -q -A -t -v ON_ERROR_STOP=1 "${SG[@]}" "$@"
}

# one NAME SQL : a single value through the proxy; dies on an error or an empty answer.
one() {
  local name=$1 sql=$2 out
  out=$(sgq -c "$sql" 2>"$work/one.err") || { cat "$work/one.err" >&2; die "$name: '$sql' failed"; }
  [ -n "$out" ] || die "$name: '$sql' answered nothing"
  echo "$out"
}

# check_spread NAME TABLE ROWS : the rows of TABLE on each shard (read with the shard hint) add
# up to ROWS, and so does count(*) through the proxy; logs the spread.
check_spread() {
  local name=$1 table=$2 rows=$3 shard n total=0 spread="" merged
  for shard in "${SG_SHARDS[@]}"; do
    n=$(one "$name" "/* shardgate:shard=$shard */ SELECT count(*) FROM $table")
    total=$((total + n))
    spread+=" $shard=$n"
  done
  merged=$(one "$name" "SELECT count(*) FROM $table")
  log "$name: $table rows per shard:$spread (sum $total, count(*) through the proxy $merged)"
  [ "$total" = "$rows" ] || die "$name: $table: the shards hold $total rows, expected $rows"
  [ "$merged" = "$rows" ] || die "$name: $table: count(*) through the proxy is $merged, expected $rows"
  if [ "${#SG_SHARDS[@]}" -gt 1 ]; then
    for shard in "${SG_SHARDS[@]}"; do
      n=$(one "$name" "/* shardgate:shard=$shard */ SELECT count(*) FROM $table")
      [ "$n" -gt 0 ] || die "$name: $table: shard $shard holds no rows"
    done
  fi
}

# copy_in NAME TABLE FILE : \copy TABLE from FILE through the proxy; prints the elapsed ms.
copy_in() {
  local name=$1 table=$2 file=$3 t0
  t0=$(now_ns)
  sgq -c "\\copy $table from '$file'" >"$work/copy-$table.out" 2>&1 \
    || { cat "$work/copy-$table.out" >&2; die "$name: COPY $table failed"; }
  ms_since "$t0"
}

processed() { awk '/^number of transactions actually processed:/ {print $6}' "$work/pgbench-$1.log"; }

# median : the median of the numbers on stdin.
median() {
  sort -g | awk '{v[NR] = $1} END {if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# ---------------------------------------------------------------------------------------------
# 1. Single-key reads and writes on kv, 1 shard and 4 shards.
cat >"$work/ro.sql" <<'EOF'
\set k random(1, 100000)
SELECT v FROM kv WHERE k = :k;
EOF
cat >"$work/rw.sql" <<'EOF'
\set k random(1, 100000)
SELECT v FROM kv WHERE k = :k;
UPDATE kv SET v = v + 1 WHERE k = :k;
EOF
awk -v n="$KV_ROWS" 'BEGIN {for (k = 1; k <= n; k++) printf "%d\t0\tpad-%08d-abcdefghijklmnopqrstuvwxyz\n", k, k}' >"$work/kv.tsv"

declare -A TPS LOAD MS
for shards in 1 "$SHARDS_MANY"; do
  name=kv-$shards
  write_config "$name" "$shards"
  start_sg "$name"
  sgq -c "CREATE TABLE kv (k INT PRIMARY KEY, v INT, pad TEXT)" || die "$name: CREATE TABLE kv failed"
  LOAD[$name]=$(copy_in "$name" kv "$work/kv.tsv")
  log "$name: loaded $KV_ROWS rows with COPY in ${LOAD[$name]} ms"
  check_spread "$name" kv "$KV_ROWS"
  TPS[$name-ro]=$(run_pgbench "$name-ro" prepared 8 2 -n -f "$work/ro.sql" "${SG[@]}")
  before=$(one "$name" "SELECT sum(v) FROM kv")
  TPS[$name-rw]=$(run_pgbench "$name-rw" prepared 8 2 -n -f "$work/rw.sql" "${SG[@]}")
  after=$(one "$name" "SELECT sum(v) FROM kv")
  done_tx=$(processed "$name-rw")
  [ $((after - before)) = "$done_tx" ] \
    || die "$name: sum(v) grew by $((after - before)) during the read-write run, but pgbench processed $done_tx transactions (one UPDATE each)"
  log "$name: sum(v) grew by $done_tx = transactions processed"
  check_spread "$name" kv "$KV_ROWS"
  stop_sg "$name"
done

# ---------------------------------------------------------------------------------------------
# 2. count(*) and ORDER BY ... LIMIT 10 over 1,000,000 rows: 4 shards against one SQLite file.
Q_COUNT="SELECT count(*) FROM big"
Q_TOP="SELECT id, val FROM big ORDER BY val DESC LIMIT 10"
awk -v n="$BIG_ROWS" 'BEGIN {for (id = 1; id <= n; id++) printf "%d\t%d\tnote %d\n", id, (id * 7919) % 1000003, id}' >"$work/big.tsv"

# The plain SQLite file, loaded from the same data file.
plain=$work/plain.db
t0=$(now_ns)
timeout "$CALL_TIMEOUT" sqlite3 -batch -bail "$plain" >/dev/null <<EOF || die "loading $plain with sqlite3 failed"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE big (id INT PRIMARY KEY, val INT, note TEXT);
.mode tabs
.import $work/big.tsv big
EOF
LOAD[plain]=$(ms_since "$t0")
n=$(sqlite3 -batch -readonly "$plain" "$Q_COUNT")
[ "$n" = "$BIG_ROWS" ] || die "plain SQLite file holds $n rows, expected $BIG_ROWS"
log "plain SQLite: loaded $BIG_ROWS rows with .import in ${LOAD[plain]} ms"
expect_count=$(sqlite3 -batch -noheader -separator '|' -readonly "$plain" "$Q_COUNT")
expect_top=$(sqlite3 -batch -noheader -separator '|' -readonly "$plain" "$Q_TOP")
[ "$(echo "$expect_top" | wc -l)" = 10 ] || die "plain SQLite: the top-10 query returned $(echo "$expect_top" | wc -l) rows"

# time_sqlite LABEL SQL EXPECTED : RUNS runs in one sqlite3 session with .timer on; checks every
# result; prints the median in ms.
time_sqlite() {
  local label=$1 sql=$2 expected=$3 out i
  out=$work/time-$label.out
  {
    echo ".timer on"
    for i in $(seq "$RUNS"); do echo "$sql;"; done
  } | timeout "$CALL_TIMEOUT" sqlite3 -batch -bail -noheader -separator '|' -readonly "$plain" >"$out" 2>&1 \
    || { cat "$out" >&2; die "$label: sqlite3 failed"; }
  check_runs "$label" "$out" '^Run Time: ' "$expected"
  awk '/^Run Time: / {print $4 * 1000}' "$out" | median
}

# time_sg LABEL SQL EXPECTED : RUNS runs in one psql session with \timing on; checks every result;
# prints the median in ms.
time_sg() {
  local label=$1 sql=$2 expected=$3 out i
  out=$work/time-$label.out
  {
    echo '\timing on'
    for i in $(seq "$RUNS"); do echo "$sql;"; done
  } | sgq >"$out" 2>&1 || { cat "$out" >&2; die "$label: psql failed"; }
  check_runs "$label" "$out" '^Time: ' "$expected"
  awk '/^Time: / {print $2}' "$out" | median
}

# check_runs LABEL FILE TIMING_RE EXPECTED : FILE holds RUNS results, each followed by its timing
# line; each result must be EXPECTED.
check_runs() {
  local label=$1 file=$2 re=$3 expected=$4 i got timings
  timings=$(grep -cE "$re" "$file" || true)
  [ "$timings" = "$RUNS" ] || { cat "$file" >&2; die "$label: $timings timed runs, expected $RUNS"; }
  for i in $(seq "$RUNS"); do
    got=$(awk -v want="$i" -v re="$re" '$0 ~ re {n++; next} n == want - 1 && NF' "$file")
    if [ "$got" != "$expected" ]; then
      echo "expected (plain SQLite):" >&2; echo "$expected" >&2
      echo "got (run $i):" >&2; echo "$got" >&2
      die "$label: run $i returned a different result"
    fi
  done
}

MS[plain-count]=$(time_sqlite plain-count "$Q_COUNT" "$expect_count")
MS[plain-top]=$(time_sqlite plain-top "$Q_TOP" "$expect_top")
log "plain SQLite: count(*) median ${MS[plain-count]} ms, top 10 median ${MS[plain-top]} ms"

for shards in 1 "$SHARDS_MANY"; do
  name=big-$shards
  write_config "$name" "$shards"
  start_sg "$name"
  sgq -c "CREATE TABLE big (id INT PRIMARY KEY, val INT, note TEXT)" || die "$name: CREATE TABLE big failed"
  LOAD[$name]=$(copy_in "$name" big "$work/big.tsv")
  log "$name: loaded $BIG_ROWS rows with COPY in ${LOAD[$name]} ms"
  check_spread "$name" big "$BIG_ROWS"
  MS[$name-count]=$(time_sg "$name-count" "$Q_COUNT" "$expect_count")
  MS[$name-top]=$(time_sg "$name-top" "$Q_TOP" "$expect_top")
  log "$name: count(*) median ${MS[$name-count]} ms, top 10 median ${MS[$name-top]} ms"
  stop_sg "$name"
done

# ---------------------------------------------------------------------------------------------
echo
echo "## shardgate sharding benchmark"
echo
echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')); shardgate $build;"
echo "hash strategy; every shard a SQLite file on the same disk; sqlite3 CLI $(sqlite3 -version | cut -d' ' -f1)."
echo
echo "### Single-key statements on kv ($KV_ROWS rows, loaded with COPY through the proxy)"
echo
echo "pgbench -n -M prepared -c 8 -j 2 -T $DURATION -f SCRIPT, k = random(1, $KV_ROWS); read-write is"
echo "the SELECT and UPDATE kv SET v = v + 1 WHERE k = :k as two autocommit statements."
echo
echo "| workload | 1 shard TPS | $SHARDS_MANY shards TPS | $SHARDS_MANY/1 |"
echo "|---|---:|---:|---:|"
printf "| read-only (SELECT v FROM kv WHERE k = :k) | %.1f | %.1f | %s |\n" \
  "${TPS[kv-1-ro]}" "${TPS[kv-$SHARDS_MANY-ro]}" "$(ratio "${TPS[kv-$SHARDS_MANY-ro]}" "${TPS[kv-1-ro]}")"
printf "| read-write (SELECT + UPDATE) | %.1f | %.1f | %s |\n" \
  "${TPS[kv-1-rw]}" "${TPS[kv-$SHARDS_MANY-rw]}" "$(ratio "${TPS[kv-$SHARDS_MANY-rw]}" "${TPS[kv-1-rw]}")"
printf "| COPY of %d rows (ms) | %s | %s | %s |\n" "$KV_ROWS" \
  "${LOAD[kv-1]}" "${LOAD[kv-$SHARDS_MANY]}" "$(ratio "${LOAD[kv-$SHARDS_MANY]}" "${LOAD[kv-1]}")"
echo
echo "### Scatter-gather over $BIG_ROWS rows: $SHARDS_MANY shards against one plain SQLite file"
echo
echo "big (id INT PRIMARY KEY, val INT, note TEXT), sharded by id, val = (id * 7919) % 1000003, no index"
echo "on val; median of $RUNS runs in one session (psql \\timing through the proxy, sqlite3 .timer on the file)."
echo
echo "| query | plain SQLite (ms) | shardgate, $SHARDS_MANY shards (ms) | $SHARDS_MANY shards/SQLite | shardgate, 1 shard (ms, reference) | $SHARDS_MANY shards/1 shard |"
echo "|---|---:|---:|---:|---:|---:|"
m=$SHARDS_MANY
printf "| %s | %s | %s | %s | %s | %s |\n" "$Q_COUNT" "${MS[plain-count]}" "${MS[big-$m-count]}" \
  "$(ratio "${MS[big-$m-count]}" "${MS[plain-count]}")" "${MS[big-1-count]}" "$(ratio "${MS[big-$m-count]}" "${MS[big-1-count]}")"
printf "| %s | %s | %s | %s | %s | %s |\n" "$Q_TOP" "${MS[plain-top]}" "${MS[big-$m-top]}" \
  "$(ratio "${MS[big-$m-top]}" "${MS[plain-top]}")" "${MS[big-1-top]}" "$(ratio "${MS[big-$m-top]}" "${MS[big-1-top]}")"
printf "| load (ms): sqlite3 .import / COPY through the proxy | %s | %s | %s | %s | %s |\n" "${LOAD[plain]}" \
  "${LOAD[big-$m]}" "$(ratio "${LOAD[big-$m]}" "${LOAD[plain]}")" "${LOAD[big-1]}" "$(ratio "${LOAD[big-$m]}" "${LOAD[big-1]}")"
echo
echo "sqlite3 .timer prints whole milliseconds; psql \\timing prints microseconds. The plain file is read by"
echo "the sqlite3 CLI's SQLite, shardgate's shards by its bundled one; the 1-shard column (same proxy, same"
echo "SQLite, one file) separates the effect of splitting the table from that of the proxy and the versions."
echo
echo "Every pgbench run had 0 failed transactions; after each read-write run sum(v) had grown by exactly"
echo "the number of transactions processed; the rows per shard added up to the table's rows; every"
echo "timed query through the proxy returned the plain SQLite file's result."
