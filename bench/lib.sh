# Shared by the bench scripts: logging, failing loudly, starting and stopping a shardgate
# server, running pgbench, and reading SHOW shardgate.replicas. The caller sets SG_BIN, SG_CONF,
# SG_LISTEN_PORT, DURATION, HANG_MARGIN and work, and its cleanup trap kills SG_PID if it is
# still set.

log() { echo "==> $*" >&2; }
die() {
  echo >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "!!! FAILED: $*" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  if [ -n "${SG_LOG:-}" ] && [ -s "$SG_LOG" ]; then
    echo "--- last lines of the shardgate log ($SG_LOG) ---" >&2
    tail -n 30 "$SG_LOG" >&2 || true
  fi
  exit 1
}
# checkout_label : this checkout's commit, noting uncommitted changes to the server's sources.
checkout_label() {
  local label
  label="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    label="$label + uncommitted changes in src/"
  fi
  echo "$label"
}

# private_shardgate : builds the release binary and sets SG_BIN to a copy in $work, because
# others may rebuild target/release/shardgate while a benchmark runs.
private_shardgate() {
  log "cargo build --release"
  cargo build --release -q
  cp target/release/shardgate "$work/shardgate"
  SG_BIN=$work/shardgate
}

# remove_work_and_exit RC : the end of every bench script's EXIT trap.
remove_work_and_exit() {
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$1"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# start_sg NAME : starts the server for the config last written, waits for its port.
start_sg() {
  local name=$1
  SG_LOG=$work/$name.log
  "$SG_BIN" serve --config "$SG_CONF" --log-level warn 2>"$SG_LOG" &
  SG_PID=$!
  SG=(-h 127.0.0.1 -p "$SG_LISTEN_PORT" -U app app)
  for _ in $(seq 150); do
    kill -0 "$SG_PID" 2>/dev/null || die "$name: shardgate exited during start-up"
    if pg_isready -q -h 127.0.0.1 -p "$SG_LISTEN_PORT" -U app -d app \
      && timeout 10 psql -X -q -A -t "${SG[@]}" -c 'SELECT 1' >/dev/null 2>&1; then
      log "$name: shardgate pid $SG_PID on 127.0.0.1:$SG_LISTEN_PORT"
      return
    fi
    sleep 0.2
  done
  die "$name: shardgate did not accept connections on port $SG_LISTEN_PORT within 30s"
}

# stop_sg NAME : SIGTERM, wait (bounded), require exit status 0.
stop_sg() {
  local name=$1 rc
  kill -TERM "$SG_PID"
  for _ in $(seq 300); do kill -0 "$SG_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SG_PID" 2>/dev/null; then
    die "$name: shardgate (pid $SG_PID) still running 30s after SIGTERM (hang)"
  fi
  if wait "$SG_PID"; then rc=0; else rc=$?; fi
  SG_PID=
  [ "$rc" = 0 ] || die "$name: shardgate exited with status $rc after SIGTERM"
  if grep -qE 'ERROR|WARN' "$SG_LOG"; then
    log "$name: shardgate logged warnings/errors (last 10):"
    grep -E 'ERROR|WARN' "$SG_LOG" | tail -n 10 >&2
  fi
  log "$name: shardgate stopped, exit status 0"
}

# check_pgbench LABEL TIMEOUT ARGS... : runs `pgbench ARGS...` for at most TIMEOUT seconds into
# $work/pgbench-LABEL.log; dies (printing the log) on a hang, a non-zero exit, a failed
# transaction, a missing tps line or any error/abort message, so a number is never reported for
# a run that went wrong.
check_pgbench() {
  local label=$1 limit=$2 out rc failed tps
  shift 2
  out="$work/pgbench-$label.log"
  if timeout "$limit" pgbench "$@" >"$out" 2>&1; then
    rc=0
  else
    rc=$?
  fi
  if [ "$rc" = 124 ]; then
    cat "$out" >&2
    die "$label: pgbench did not finish within ${limit}s (hang)"
  fi
  failed=$(awk '/^number of failed transactions:/ {print $5}' "$out")
  tps=$(awk '/^tps = / {print $3}' "$out")
  if [ "$rc" != 0 ] || [ "$failed" != 0 ] || [ -z "$tps" ] || grep -qiE 'error|aborted' "$out"; then
    cat "$out" >&2
    die "$label: pgbench exit status $rc, failed transactions '${failed:-?}'"
  fi
  log "$label: $tps tps ($(awk '/^number of transactions actually processed:/ {print $6}' "$out") transactions, 0 failed)"
}

# run_pgbench LABEL MODE CLIENTS THREADS ARGS... : `pgbench -M MODE -c CLIENTS -j THREADS
# -T $DURATION ARGS...`, checked as above (a hang is DURATION + HANG_MARGIN seconds); prints the
# TPS (excluding connection time) on stdout; the log is $work/pgbench-LABEL.log.
run_pgbench() {
  local label=$1 mode=$2 clients=$3 threads=$4
  shift 4
  check_pgbench "$label" $((DURATION + HANG_MARGIN)) -M "$mode" -c "$clients" -j "$threads" -T "$DURATION" "$@"
  awk '/^tps = / {print $3}' "$work/pgbench-$label.log"
}

# show_replicas : SHOW shardgate.replicas of the server in SG as '|'-separated rows with a
# header line.
show_replicas() {
  timeout 10 psql -X -q -A -F'|' -P footer=off -v ON_ERROR_STOP=1 "${SG[@]}" -c 'SHOW shardgate.replicas'
}

# cols FILE COLUMN... : the named columns of every row of SHOW outputs in FILE (header lines
# skipped), space-separated, NULL for an empty value.
cols() {
  local file=$1
  shift
  awk -F'|' -v want="$*" '
    BEGIN { n = split(want, names, " ") }
    /^name\|/ { for (i = 1; i <= NF; i++) col[$i] = i; next }
    NF > 1 {
      line = ""
      for (i = 1; i <= n; i++) {
        if (!(names[i] in col)) { print "no column " names[i] > "/dev/stderr"; exit 1 }
        v = $col[names[i]]; if (v == "") v = "NULL"
        line = line (i > 1 ? " " : "") v
      }
      print line
    }' "$file"
}

# wait_caught_up NAME REPLICAS : until the server in SG lists REPLICAS replicas, each with
# lag_records = 0 (at most CATCHUP_TIMEOUT seconds, default 300).
wait_caught_up() {
  local name=$1 replicas=$2 deadline=$((SECONDS + ${CATCHUP_TIMEOUT:-300})) snap="$work/catchup.txt"
  while :; do
    show_replicas >"$snap" || die "$name: SHOW shardgate.replicas failed"
    if [ "$(cols "$snap" role | grep -c '^replica$')" = "$replicas" ] \
      && [ -z "$(cols "$snap" role lag_records | awk '$1 == "replica" && $2 != 0')" ]; then
      return
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      cat "$snap" >&2
      die "$name: replicas not caught up (lag_records = 0) within ${CATCHUP_TIMEOUT:-300}s"
    fi
    sleep 0.5
  done
}

# write_sg_toml FILE LABEL PORT DATA_DIR AUTH SHARDS REPLICAS MODE SYNCHRONOUS : writes a shardgate
# config for the bench scripts and has `check-config` validate it. SHARDS is 1 or more (several
# shard pgbench's tables by hash); REPLICAS per shard is 0, 1 or 2 (two get weights 2:1); MODE is
# the replication mode (unused without replicas); SYNCHRONOUS the [storage] synchronous value.
# SG_REPLICATION_EXTRA, when set, is added to the [replication] section (e.g. a read_consistency).
write_sg_toml() {
  local file=$1 label=$2 port=$3 data=$4 auth=$5 shards=$6 replicas=$7 mode=$8 sync=$9 i s
  {
    cat <<EOF
# $label
[server]
listen = "127.0.0.1:$port"
database = "app"
data_dir = "$data"
auth = "$auth"
max_connections = 20000
shutdown_timeout = "10s"

[storage]
synchronous = "$sync"
busy_timeout = "5s"
read_connections = 4

EOF
    if [ "$replicas" != 0 ]; then
      cat <<EOF
[replication]
mode = "$mode"
min_acks = 1
ack_timeout = "10s"
max_lag = "30s"
health_check_interval = "10s"
${SG_REPLICATION_EXTRA:-}

EOF
    fi
    if [ "$shards" != 1 ]; then
      cat <<EOF
[sharding]
strategy = "hash"
tables = [
  { name = "pgbench_accounts", key = "aid" },
  { name = "pgbench_tellers", key = "tid" },
  { name = "pgbench_branches", key = "bid" },
  { name = "pgbench_history", key = "aid" },
]

EOF
    fi
    printf '[[users]]\nname = "app"\npassword = "app"\n'
    for i in $(seq "$shards"); do
      s=main
      [ "$shards" != 1 ] && s=shard-$i
      printf '\n[[shards]]\nname = "%s"\nprimary = "%s/primary.db"\n' "$s" "$s"
      case "$replicas" in
        1) printf 'replicas = [{ name = "%s-r1", path = "%s/replica-1.db", weight = 1 }]\n' "$s" "$s" ;;
        2) printf 'replicas = [\n  { name = "%s-r1", path = "%s/replica-1.db", weight = 2 },\n  { name = "%s-r2", path = "%s/replica-2.db", weight = 1 },\n]\n' "$s" "$s" "$s" "$s" ;;
      esac
    done
  } >"$file"
  "$SG_BIN" check-config --config "$file" >"$file.check" 2>&1 \
    || { cat "$file.check" >&2; die "check-config rejected $file"; }
}
