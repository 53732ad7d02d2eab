#!/usr/bin/env bash
# The cluster helpers themselves: a primary and a streaming replica come up within seconds, a
# write on the primary is visible on the replica, the replica is read-only, and stopping leaves
# no server running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/pgcluster.sh"

# What a killed script leaves behind (its owner gone, a server that died with it and left a
# stale postmaster.pid) must be reaped by the next script, not make it fail.
stale=$(mktemp -d "${TMPDIR:-/tmp}/switchyard.XXXXXX")
bash -c 'echo $$' >"$stale/owner.pid"
mkdir -p "$stale/primary/data"
echo 999999999 >"$stale/primary/data/postmaster.pid"
chown -R "$PGC_USER:" "$stale"
pgc_init
[[ ! -e $stale ]] || pgc_die "the stale temp root $stale was not reaped"

start_ms=$(($(date +%s%N) / 1000000))
primary_port=$(free_port)
replica_port=$(free_port)
[[ $primary_port != "$replica_port" ]] || pgc_die "free_port returned the same port twice"
pg_create_primary "$PGC_ROOT/primary" "$primary_port"
pg_start "$PGC_ROOT/primary"
pg_create_replica "$primary_port" "$PGC_ROOT/replica" "$replica_port"
pg_start "$PGC_ROOT/replica"
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
echo "primary :$primary_port and replica :$replica_port created and started in ${elapsed_ms} ms"
((elapsed_ms < 30000)) || pgc_die "clusters took ${elapsed_ms} ms to start"

[[ $(sql_value "$primary_port" 'select pg_is_in_recovery()') == f ]] || pgc_die "primary in recovery"
[[ $(sql_value "$replica_port" 'select pg_is_in_recovery()') == t ]] || pgc_die "replica not in recovery"
[[ $(sql_value "$primary_port" 'select count(*) from pg_stat_replication') == 1 ]] ||
  pgc_die "replica is not streaming"

psql_at "$primary_port" -c 'create table t(x int); insert into t values (42)'
for ((i = 0; i < 100; i++)); do
  value=$(sql_value "$replica_port" 'select x from t' 2>/dev/null || true)
  [[ $value == 42 ]] && break
  sleep 0.1
done
[[ $value == 42 ]] || pgc_die "the write did not reach the replica in 10 s"

if psql_at "$replica_port" -c 'insert into t values (1)' 2>"$PGC_ROOT/ro.err"; then
  pgc_die "the replica accepted a write"
fi
grep -q 'read-only transaction' "$PGC_ROOT/ro.err" || pgc_die "unexpected error: $(cat "$PGC_ROOT/ro.err")"

# A role that must log in with a password, over TCP; others stay on trust.
psql_at "$primary_port" -c "create role alice login password 'secret'"
pg_require_password "$PGC_ROOT/primary" alice scram-sha-256
if PGPASSWORD=wrong "$PG_BINDIR/psql" -X -w -h 127.0.0.1 -p "$primary_port" -U alice -d postgres \
  -c 'select 1' >/dev/null 2>&1; then
  pgc_die "alice logged in with a wrong password"
fi
PGPASSWORD=secret "$PG_BINDIR/psql" -X -w -h 127.0.0.1 -p "$primary_port" -U alice -d postgres \
  -Atc 'select 1' >/dev/null || pgc_die "alice could not log in with her password"

pg_stop "$PGC_ROOT/replica"
pg_stop "$PGC_ROOT/primary"
if "$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$primary_port"; then
  pgc_die "primary still accepts connections after pg_stop"
fi
echo "pgcluster: ok"
