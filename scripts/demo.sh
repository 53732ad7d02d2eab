#!/usr/bin/env bash
# A one-minute tour: a throwaway PostgreSQL primary with two streaming replicas, switchyard in
# front of them, a read-heavy pgbench through it with one replica SIGKILLed midway, then every
# server backend terminated under a working set of clients, and what the clients saw.
# Everything it starts is stopped and removed at the end.
#
# usage: demo.sh BINARY     (or the stand-ins `pgbouncer` / `direct`, to compare: they get the
#                           primary alone)
# environment: DEMO_SECONDS (pgbench run length, default 10)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/pgcluster.sh"
binary=${1:?usage: demo.sh BINARY}
seconds=${DEMO_SECONDS:-10}

pgc_init
name=$(basename "$binary")
if [[ -t 1 ]]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi

say "1. a throwaway PostgreSQL 15 primary, two streaming replicas, and $name in front"
pg_start_replicated "$PGC_ROOT/primary" "$PGC_ROOT/replica" 2
primary_port=$PGC_PRIMARY_PORT
replica1_port=${PGC_REPLICA_PORTS[0]}
replica2_port=${PGC_REPLICA_PORTS[1]}
flags=(--auth-type trust --workers 2)
case $binary in
  direct | pgbouncer) ;;
  *)
    flags+=(--replica "127.0.0.1:$replica1_port" --replica "127.0.0.1:$replica2_port"
      --health-user postgres --health-check-interval-ms 250)
    ;;
esac
proxy_start "$binary" "$primary_port" "$PGC_ROOT/proxy.log" "${flags[@]}"
echo "primary 127.0.0.1:$primary_port, replicas :$replica1_port and :$replica2_port," \
  "$name on 127.0.0.1:$PROXY_PORT"
via_proxy=(-h 127.0.0.1 -p "$PROXY_PORT" -U postgres)

# Server-side facts come from direct connections, never through the proxy.
direct() { sql_value "$primary_port" "$1"; }
commits() {
  sql_value "$1" "select xact_commit from pg_stat_database where datname = 'postgres'" \
    2>/dev/null || echo "-"
}
server_backends="select count(*) from pg_stat_activity where backend_type = 'client backend'
  and pid <> pg_backend_pid()"
sessions_opened="select sessions from pg_stat_database where datname = 'postgres'"

say "2. pgbench -i -s 2 through $name"
"$PG_BINDIR/pgbench" "${via_proxy[@]}" -i -s 2 -q postgres 2>&1 | grep -E 'done|generating' || true

say "3. read-heavy: pgbench -S -c 8 -j 2 -T $seconds -M extended, replica 1 SIGKILLed at second 3"
# Let the replicas replay the initialisation, so the reads have somewhere fresh to go.
pg_wait_replayed "$primary_port" "$replica1_port" "$replica2_port"
sleep 1  # pg_stat_database counts as backends go idle
before_primary=$(commits "$primary_port")
before_replica1=$(commits "$replica1_port")
before_replica2=$(commits "$replica2_port")
peak_file=$PGC_ROOT/peak
echo 0 >"$peak_file"
(
  peak=0
  while sleep 0.5; do
    now=$(direct "$server_backends" 2>/dev/null || echo 0)
    ((now > peak)) && peak=$now && echo "$peak" >"$peak_file"
  done
) &
sampler=$!
pgc_on_exit "kill $sampler 2>/dev/null"
replica1_pid=$(head -n 1 "$PGC_ROOT/replica1/data/postmaster.pid")
(sleep 3 && kill -KILL "$replica1_pid" && echo "  [t=3s] SIGKILL sent to replica 1 (pid $replica1_pid)") &
killer=$!
"$PG_BINDIR/pgbench" "${via_proxy[@]}" -S -c 8 -j 2 -T "$seconds" -M extended postgres \
  >"$PGC_ROOT/pgbench.txt" 2>&1 || true
wait "$killer" 2>/dev/null || true
kill "$sampler" 2>/dev/null || true
sleep 1.5
on_primary=$(($(commits "$primary_port") - before_primary))
on_replica2=$(($(commits "$replica2_port") - before_replica2))
grep -E '^(number of (transactions actually processed|failed)|latency average|tps)' \
  "$PGC_ROOT/pgbench.txt" || tail -n 5 "$PGC_ROOT/pgbench.txt"
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$PGC_ROOT/pgbench.txt")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$PGC_ROOT/pgbench.txt")
aborted=$(grep -c 'aborted' "$PGC_ROOT/pgbench.txt" || true)
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
  "$PGC_ROOT/pgbench.txt")
peak=$(<"$peak_file")
# Replica 1 is dead, so its count cannot be read; what the others did not serve, it did.
on_replica1=$(( ${processed:-0} - on_primary - on_replica2 ))
((on_replica1 < 0)) && on_replica1=0
echo "transactions by node (pg_stat_database): primary $on_primary, replica 1 ~$on_replica1" \
  "(until killed), replica 2 $on_replica2"
events=$(grep 'event=node_state' "$PROXY_LOG" | sed 's/^/  /' || true)
echo "failover events (switchyard's log):"
echo "${events:-  (none)}"
pg_start "$PGC_ROOT/replica1" 2>/dev/null  # back for the rest of the tour

say "4. pgbench -C: a new client connection for every transaction, 5 s"
sessions_all() {
  local total=0 port n
  for port in "$primary_port" "$replica1_port" "$replica2_port"; do
    n=$(sql_value "$port" "$sessions_opened" 2>/dev/null || echo 0)
    total=$((total + n))
  done
  echo "$total"
}
before=$(sessions_all)
"$PG_BINDIR/pgbench" "${via_proxy[@]}" -C -c 8 -j 2 -T 5 -S postgres >"$PGC_ROOT/pgbench-C.txt" 2>&1 ||
  true
sleep 1  # backends flush their statistics as they exit
opened=$(($(sessions_all) - before - 3))  # less the `before` queries' own sessions
client_connections=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
  "$PGC_ROOT/pgbench-C.txt")
echo "$client_connections client connections; the servers opened $opened sessions meanwhile"

say "5. the fault: every server backend on every node terminated while 6 clients work"
fault_report=$(python3 - "$PROXY_PORT" "$primary_port,$replica1_port,$replica2_port" \
  "$here/../tests/integration" <<'EOF'
import sys, threading, time
from collections import Counter
proxy_port = int(sys.argv[1])
node_ports = [int(p) for p in sys.argv[2].split(",")]
sys.path.insert(0, sys.argv[3])
import pgwire

FAULT_AT, STOP_AT, CLIENTS = 2.0, 6.0, 6
lock = threading.Lock()
seen = Counter()          # what clients saw, by outcome
after_fault_ok = Counter()
start = time.monotonic()

def client(n):
    conn = None
    while time.monotonic() - start < STOP_AT:
        try:
            if conn is None:
                conn = pgwire.connect(proxy_port)
                if time.monotonic() - start > FAULT_AT:
                    with lock: seen["new client connected after the fault"] += 1
            conn.query("select pg_sleep(0.1), count(*) from pgbench_branches")
            if time.monotonic() - start > FAULT_AT + 0.5:
                with lock: after_fault_ok[n] += 1
        except pgwire.PgError as e:
            with lock: seen[f"ErrorResponse {e.sqlstate} ({e.fields.get('M')})"
                            + (", then the connection closed" if e.closed else "")] += 1
            if e.closed:
                conn = None
        except (pgwire.Closed, OSError) as e:
            with lock: seen[f"connection lost without an error message ({e})"] += 1
            conn = None
    if conn:
        conn.close()

threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
for t in threads: t.start()
time.sleep(FAULT_AT)
killed = 0
for port in node_ports:
    direct = pgwire.connect(port)
    rows = direct.query("select count(*) from (select pg_terminate_backend(pid)"
                        " from pg_stat_activity where backend_type = 'client backend'"
                        " and pid <> pg_backend_pid()) t")
    killed += int(rows[0][0])
    direct.close()
for t in threads: t.join()
print(f"at t={FAULT_AT:.0f}s pg_terminate_backend() on all {killed} server backends")
for outcome, count in sorted(seen.items()):
    print(f"  clients saw: {outcome}  x{count}")
print(f"  after the fault: {sum(after_fault_ok.values())} queries succeeded, "
      f"{len(after_fault_ok)} of {CLIENTS} clients kept working")
EOF
)
echo "$fault_report"
new_client=$(psql_at "$PROXY_PORT" -Atc 'select count(*) from pgbench_accounts' 2>&1 || true)
echo "a brand-new client afterwards: select count(*) from pgbench_accounts -> $new_client"

say "summary ($name)"
printf '  %-44s %s\n' \
  "pgbench -S -M extended, 8 clients, ${seconds}s:" "${tps:-?} tps, ${failed:-?} failed transactions, ${aborted:-?} aborted clients" \
  "replica 1 SIGKILLed at second 3;" "transactions by node: primary $on_primary, replica 1 ~$on_replica1, replica 2 $on_replica2" \
  "failover events logged:" "$(grep -c 'event=node_state' "$PROXY_LOG" || true) (node down, node up, roles)" \
  "primary connections used by 8 clients (peak):" "${peak}" \
  "pgbench -C, connection per transaction:" "${client_connections:-?} client connections -> $opened server sessions" \
  "fault:" "all server backends terminated mid-workload"
sed -n 's/^  clients saw: /    clients saw: /p; s/^  after the fault: /    after the fault: /p' <<<"$fault_report"
printf '  %-44s %s\n' "new client after the fault:" "$new_client rows in pgbench_accounts"
proxy_alive && echo "  the proxy is still running; stopping everything now" ||
  echo "  the proxy DIED during the demo (log: $PROXY_LOG)"
