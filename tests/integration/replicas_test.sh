#!/usr/bin/env bash
# Replicas through switchyard, against a real PostgreSQL 15 primary with two streaming replicas
# (DESIGN.md section 5):
#   1. routing: pgbench -S through switchyard with healthy replicas sends at least 90% of its
#      transactions to the replicas (pg_stat_database on every node);
#   2. failover: the same load, one replica SIGKILLed at second 3: no failed transaction, no
#      aborted client;
#   3. promotion: the primary stops, a replica is promoted; writes through switchyard succeed
#      again within 10 s without restarting it; an idle client keeps its session and its SET;
#   4. fencing: the old primary, restarted, gets none of the new writes.
#
# usage: replicas_test.sh BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/pgcluster.sh"
binary=${1:?usage: replicas_test.sh BINARY}
seconds=${REPLICAS_TEST_SECONDS:-10}
clients=8

pgc_init
pg_start_replicated "$PGC_ROOT/primary" "$PGC_ROOT/replica" 2
primary_port=$PGC_PRIMARY_PORT
replica1_port=${PGC_REPLICA_PORTS[0]}
replica2_port=${PGC_REPLICA_PORTS[1]}

proxy_start "$binary" "$primary_port" "$PGC_ROOT/proxy.log" --auth-type trust --workers 2 \
  --replica "127.0.0.1:$replica1_port" --replica "127.0.0.1:$replica2_port" \
  --health-user postgres --health-check-interval-ms 200 --health-check-timeout-ms 1000
pgc_log "switchyard on $PROXY_PORT: primary $primary_port, replicas $replica1_port $replica2_port"

"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -i -s 2 -q postgres \
  >"$PGC_ROOT/init.txt" 2>&1 || { cat "$PGC_ROOT/init.txt"; pgc_fail "pgbench -i through switchyard"; }
# Let both replicas replay the initialisation before counting.
pg_wait_replayed "$primary_port" "$replica1_port" "$replica2_port"

commits() {
  sql_value "$1" "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'"
}

# run_pgbench NAME: select-only, extended protocol; fails the test on any failed transaction or
# aborted client.
run_pgbench() {
  local out=$PGC_ROOT/pgbench-$1.txt status=0
  "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -S -M extended \
    -c "$clients" -j 2 -T "$seconds" postgres >"$out" 2>&1 || status=$?
  pgc_check_pgbench "$1" "$out" "$status"
  sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out"
}

# 1. Routing with healthy replicas.
sleep 1  # pg_stat_database is updated by the backends as they go idle
p0=$(commits "$primary_port")
r10=$(commits "$replica1_port")
r20=$(commits "$replica2_port")
done_healthy=$(run_pgbench healthy)
sleep 1.5
p1=$(commits "$primary_port")
r11=$(commits "$replica1_port")
r21=$(commits "$replica2_port")
on_primary=$((p1 - p0))
on_replicas=$((r11 - r10 + r21 - r20))
share=$((100 * on_replicas / (on_primary + on_replicas)))
pgc_log "healthy: $done_healthy transactions; commits primary=$on_primary" \
  "replica1=$((r11 - r10)) replica2=$((r21 - r20)); replicas' share ${share}%"
((share >= 90)) || pgc_fail "only ${share}% of the select-only commits ran on replicas (want >= 90%)"
((r11 - r10 > 0 && r21 - r20 > 0)) || pgc_fail "the reads were not balanced over both replicas"

# 1b. Function volatility comes from pg_proc: a user function declared STABLE is read-only, so a
# session's calls of it go to the replicas (once the first, which counts as volatile until the
# table is loaded, and read-your-writes after it, are past); a VOLATILE one stays on the
# primary. The functions say where they ran.
psql_at "$PROXY_PORT" -c "CREATE FUNCTION sy_where_stable() RETURNS boolean STABLE LANGUAGE sql
  AS 'SELECT pg_is_in_recovery()'"
psql_at "$PROXY_PORT" -c "CREATE FUNCTION sy_where_volatile() RETURNS boolean VOLATILE
  LANGUAGE sql AS 'SELECT pg_is_in_recovery()'"
pg_wait_replayed "$primary_port" "$replica1_port" "$replica2_port"
# on_replicas FUNCTION: of 100 calls in one session through switchyard, how many ran on a
# replica (one every 20 ms, so the health polls move the read-your-writes watermark meanwhile).
on_replicas() {
  # (psql's own sleep: pg_sleep is volatile, so it would count as a write and hold the reads
  # on the primary by read-your-writes.)
  for ((i = 0; i < 100; i++)); do printf 'SELECT %s();\n\\! sleep 0.02\n' "$1"; done |
    "$PG_BINDIR/psql" -X -q -At -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d postgres |
    grep -c '^t$' || true
}
stable_on_replicas=$(on_replicas sy_where_stable)
volatile_on_replicas=$(on_replicas sy_where_volatile)
pgc_log "of 100 calls, on a replica: a STABLE user function $stable_on_replicas," \
  "a VOLATILE one $volatile_on_replicas"
((stable_on_replicas >= 80)) || pgc_fail "a STABLE user function was not routed to the replicas"
((volatile_on_replicas == 0)) || pgc_fail "a VOLATILE user function ran on a replica"

# 2. A replica SIGKILLed at second 3.
replica1_pid=$(head -n 1 "$PGC_ROOT/replica1/data/postmaster.pid")
(sleep 3 && kill -KILL "$replica1_pid") &
killer=$!
done_kill=$(run_pgbench replica-killed)
wait "$killer" || true
kill -0 "$replica1_pid" 2>/dev/null && pgc_fail "replica1 was not killed"
pgc_log "replica1 SIGKILLed at second 3: $done_kill transactions, none failed"
proxy_alive || pgc_fail "switchyard died"
grep -q 'event=' "$PROXY_LOG" || true

# 3. Promotion. An idle client holds a session with a SET.
session_in=$PGC_ROOT/session.in
session_out=$PGC_ROOT/session.out
mkfifo "$session_in"
"$PG_BINDIR/psql" -X -At -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d postgres \
  <"$session_in" >"$session_out" 2>&1 &
psql_pid=$!
pgc_track_pid "$psql_pid" psql
exec 7>"$session_in"
echo "SET application_name = 'kept_across_failover';" >&7
echo "SELECT 'before', current_setting('application_name');" >&7
for ((i = 0; i < 50; i++)); do grep -q '^before|' "$session_out" && break; sleep 0.1; done
grep -q '^before|kept_across_failover$' "$session_out" || { cat "$session_out"; pgc_fail "SET"; }

psql_at "$PROXY_PORT" -c "CREATE TABLE failover_marks (id int primary key, what text)"
psql_at "$PROXY_PORT" -c "INSERT INTO failover_marks VALUES (1, 'before promotion')"
pg_wait_replayed "$primary_port" "$replica2_port"
pg_stop "$PGC_ROOT/primary" immediate
as_pg "$PG_BINDIR/pg_ctl" -D "$PGC_ROOT/replica2/data" -w promote >/dev/null
promoted_at=$(date +%s.%N)
written=""
for ((i = 0; i < 100; i++)); do
  if psql_at "$PROXY_PORT" -c "INSERT INTO failover_marks VALUES (2, 'after promotion')" \
    2>/dev/null; then
    written=$(date +%s.%N)
    break
  fi
  sleep 0.1
done
[[ -n $written ]] || pgc_fail "no write succeeded through switchyard within 10 s of the promotion"
after=$(awk -v a="$promoted_at" -v b="$written" 'BEGIN { printf "%.1f", b - a }')
pgc_log "writes succeed again ${after} s after the promotion"
[[ $(sql_value "$replica2_port" "SELECT what FROM failover_marks WHERE id = 2") == \
  "after promotion" ]] || pgc_fail "the write did not land on the promoted replica"

echo "SELECT 'after', current_setting('application_name');" >&7
for ((i = 0; i < 100; i++)); do grep -q '^after|' "$session_out" && break; sleep 0.1; done
grep -q '^after|kept_across_failover$' "$session_out" ||
  { cat "$session_out" >&2; pgc_fail "the idle session lost its SET across the failover"; }
pgc_log "the idle session kept its SET across the failover"

# 4. The old primary comes back on the old timeline: fenced.
pg_start "$PGC_ROOT/primary"
sleep 1  # a few health polls
psql_at "$PROXY_PORT" -c "INSERT INTO failover_marks VALUES (3, 'after the old primary returned')"
[[ $(sql_value "$primary_port" "SELECT count(*) FROM failover_marks WHERE id = 3") == 0 ]] ||
  pgc_fail "a write went to the fenced old primary"
[[ $(sql_value "$replica2_port" "SELECT count(*) FROM failover_marks WHERE id = 3") == 1 ]] ||
  pgc_fail "the write after the old primary returned did not reach the new primary"
pgc_log "the restarted old primary is fenced: it got none of the new writes"

echo '\q' >&7
exec 7>&-
wait "$psql_pid" || true
proxy_stop
echo "replicas test passed"
