# Shared by the bench scripts: logging, failing loudly, starting and stopping a shardgate
# server, and running pgbench. The caller sets SG_BIN, SG_CONF, SG_LISTEN_PORT, DURATION,
# HANG_MARGIN and work, and its cleanup trap kills SG_PID if it is still set.

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

# run_pgbench LABEL ARGS... : runs pgbench, checks it completed with 0 failed transactions,
# prints the TPS (excluding connection time) on stdout; the log is $work/pgbench-LABEL.log.
run_pgbench() {
  local label=$1 out rc failed tps
  shift
  out="$work/pgbench-$label.log"
  if timeout $((DURATION + HANG_MARGIN)) pgbench -M prepared -c 8 -j 2 -T "$DURATION" "$@" >"$out" 2>&1; then
    rc=0
  else
    rc=$?
  fi
  if [ "$rc" = 124 ]; then
    cat "$out" >&2
    die "$label: pgbench did not finish within $((DURATION + HANG_MARGIN))s (hang)"
  fi
  failed=$(awk '/^number of failed transactions:/ {print $5}' "$out")
  tps=$(awk '/^tps = / {print $3}' "$out")
  if [ "$rc" != 0 ] || [ "$failed" != 0 ] || [ -z "$tps" ] || grep -qiE 'error|aborted' "$out"; then
    cat "$out" >&2
    die "$label: pgbench exit status $rc, failed transactions '${failed:-?}'"
  fi
  log "$label: $tps tps ($(awk '/^number of transactions actually processed:/ {print $6}' "$out") transactions, 0 failed)"
  echo "$tps"
}
