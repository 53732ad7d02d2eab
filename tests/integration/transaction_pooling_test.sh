#!/usr/bin/env bash
# Transaction pooling (--pool-mode transaction) against a real PostgreSQL 15 server:
#   1. pgbench -M prepared -c 32 through switchyard with --pool-size 4: no failed transaction, no
#      aborted client, and never more than 4 server connections (sampled in pg_stat_activity);
#      once the TPC-B-like script (writes, prepared statements), once select-only;
#   2. transaction_pooling.py: SET, PREPARE and a protocol prepared statement survive a change
#      of server connection, DEALLOCATE ALL, LISTEN/NOTIFY, a transaction keeps its connection.
#
# usage: transaction_pooling_test.sh BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/pgcluster.sh"
binary=${1:?usage: transaction_pooling_test.sh BINARY}
seconds=${TRANSACTION_POOLING_SECONDS:-10}
pool_size=4

pgc_init
primary_port=$(free_port)
pg_create_primary "$PGC_ROOT/primary" "$primary_port"
pg_start "$PGC_ROOT/primary"
proxy_start "$binary" "$primary_port" "$PGC_ROOT/proxy.log" --auth-type trust --workers 2 \
  --pool-mode transaction --pool-size "$pool_size"
pgc_log "switchyard on $PROXY_PORT in transaction pooling, pool size $pool_size"

"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -i -s 2 -q postgres \
  >"$PGC_ROOT/init.txt" 2>&1 || { cat "$PGC_ROOT/init.txt"; pgc_fail "pgbench -i through switchyard"; }

# The server connections switchyard holds (every client backend but the sampler's own).
server_connections() {
  sql_value "$primary_port" "SELECT count(*) FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
}

# run_pgbench NAME PGBENCH-FLAGS...: 32 clients, prepared statements.
run_pgbench() {
  local name=$1 out=$PGC_ROOT/pgbench-$1.txt most=0 now status=0
  shift
  "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -M prepared -c 32 -j 2 \
    -T "$seconds" "$@" postgres >"$out" 2>&1 &
  local bench=$!
  while kill -0 "$bench" 2>/dev/null; do
    now=$(server_connections)
    ((now > most)) && most=$now
    sleep 0.5
  done
  wait "$bench" || status=$?
  pgc_check_pgbench "$name" "$out" "$status"
  ((most <= pool_size)) || pgc_fail "pgbench ($name): $most server connections, pool size $pool_size"
  pgc_log "pgbench -M prepared -c 32 $* ($name): $(grep -E '^number of transactions actually' "$out" |
    sed 's/.*: //'); tps $(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out"); failed 0;" \
    "at most $most server connections"
}

run_pgbench tpcb-like
run_pgbench select-only -S
proxy_alive || pgc_fail "switchyard died"

PROXY_PORT=$PROXY_PORT POOL_SIZE=$pool_size python3 "$here/transaction_pooling.py" ||
  pgc_fail "transaction_pooling.py"
echo "transaction pooling: ok"
