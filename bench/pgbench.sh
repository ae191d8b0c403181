#!/usr/bin/env bash
# Compares shardgate with PostgreSQL 15 on the same machine, in the same run, on the same
# 100,000-account pgbench data set: `pgbench -S -M prepared -c 8 -j 2 -T $DURATION`.
# Installs PostgreSQL 15 from Debian when missing. Prints both TPS figures and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
if ! [ -x /usr/lib/postgresql/15/bin/initdb ] || ! command -v pgbench >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
fi
work=$(mktemp -d)
trap 'kill ${SG_PID:-} 2>/dev/null || true; su postgres -c "/usr/lib/postgresql/15/bin/pg_ctl -D $work/pg stop -m fast" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
chmod 777 "$work"

# PostgreSQL 15, default settings.
su postgres -c "/usr/lib/postgresql/15/bin/initdb -D $work/pg -A trust" >/dev/null
su postgres -c "/usr/lib/postgresql/15/bin/pg_ctl -D $work/pg -o '-p 5499 -k $work -c listen_addresses=127.0.0.1' -l $work/pg.log start -w" >/dev/null
su postgres -c "createdb -h 127.0.0.1 -p 5499 bench"
pgbench -i -q -h 127.0.0.1 -p 5499 -U postgres bench >/dev/null 2>&1

# shardgate, release build, shipped config on its own data dir.
cargo build --release -q
./target/release/shardgate serve --data-dir "$work/sg" --listen 127.0.0.1:6499 --log-level warn &
SG_PID=$!
sleep 1
export PGPASSWORD=app
pgbench -i -q -h 127.0.0.1 -p 6499 -U app app >/dev/null 2>&1

run() { pgbench -S -M prepared -c 8 -j 2 -T "$DURATION" "$@" 2>/dev/null | awk '/^tps/ {print $3}'; }
pg_tps=$(run -h 127.0.0.1 -p 5499 -U postgres bench)
sg_tps=$(run -h 127.0.0.1 -p 6499 -U app app)
echo "postgresql15 -S -M prepared tps: $pg_tps"
echo "shardgate    -S -M prepared tps: $sg_tps"
echo "ratio shardgate/postgresql: $(awk -v a="$sg_tps" -v b="$pg_tps" 'BEGIN {printf "%.2f", a/b}')"
