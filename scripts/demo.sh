#!/usr/bin/env bash
# A one-minute tour: a throwaway PostgreSQL, switchyard in front of it, pgbench through it,
# then a fault (every server backend killed mid-workload) and what the clients saw.
# Everything it starts is stopped and removed at the end.
#
# usage: demo.sh BINARY     (or the stand-ins `pgbouncer` / `direct`, to compare)
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

say "1. a throwaway PostgreSQL 15 and $name in front of it"
primary_port=$(free_port)
pg_create_primary "$PGC_ROOT/primary" "$primary_port"
pg_start "$PGC_ROOT/primary"
proxy_start "$binary" "$primary_port" "$PGC_ROOT/proxy.log" --auth-type trust --workers 2
echo "PostgreSQL on 127.0.0.1:$primary_port, $name on 127.0.0.1:$PROXY_PORT"
via_proxy=(-h 127.0.0.1 -p "$PROXY_PORT" -U postgres)

# Server-side facts come from a direct connection, never through the proxy.
direct() { sql_value "$primary_port" "$1"; }
server_backends="select count(*) from pg_stat_activity where backend_type = 'client backend'
  and pid <> pg_backend_pid()"
sessions_opened="select sessions from pg_stat_database where datname = 'postgres'"

say "2. pgbench -i -s 2 through $name"
"$PG_BINDIR/pgbench" "${via_proxy[@]}" -i -s 2 -q postgres 2>&1 | grep -E 'done|generating' || true

say "3. pgbench -c 8 -j 2 -T $seconds -M extended through $name"
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
"$PG_BINDIR/pgbench" "${via_proxy[@]}" -c 8 -j 2 -T "$seconds" -M extended postgres \
  >"$PGC_ROOT/pgbench.txt" 2>&1 || true
kill "$sampler" 2>/dev/null || true
grep -E '^(number of (transactions actually processed|failed)|latency average|tps)' \
  "$PGC_ROOT/pgbench.txt" || tail -n 5 "$PGC_ROOT/pgbench.txt"
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$PGC_ROOT/pgbench.txt")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$PGC_ROOT/pgbench.txt")
peak=$(<"$peak_file")

say "4. pgbench -C: a new client connection for every transaction, 5 s"
before=$(direct "$sessions_opened")
"$PG_BINDIR/pgbench" "${via_proxy[@]}" -C -c 8 -j 2 -T 5 -S postgres >"$PGC_ROOT/pgbench-C.txt" 2>&1 ||
  true
sleep 1  # backends flush their statistics as they exit
opened=$(($(direct "$sessions_opened") - before - 1))  # less the `before` query's own session
client_connections=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
  "$PGC_ROOT/pgbench-C.txt")
echo "$client_connections client connections; the server opened $opened sessions meanwhile"

say "5. the fault: every server backend terminated while 6 clients work"
fault_report=$(python3 - "$PROXY_PORT" "$primary_port" "$here/../tests/integration" <<'EOF'
import sys, threading, time
from collections import Counter
proxy_port, primary_port = int(sys.argv[1]), int(sys.argv[2])
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
direct = pgwire.connect(primary_port)
killed = direct.query("select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity"
                      " where backend_type = 'client backend' and pid <> pg_backend_pid()) t")
direct.close()
for t in threads: t.join()
print(f"at t={FAULT_AT:.0f}s pg_terminate_backend() on all {killed[0][0]} server backends")
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
  "pgbench -M extended, 8 clients, ${seconds}s:" "${tps:-?} tps, ${failed:-?} failed transactions" \
  "server connections used by 8 clients (peak):" "${peak}" \
  "pgbench -C, connection per transaction:" "${client_connections:-?} client connections -> $opened server sessions" \
  "fault:" "all server backends terminated mid-workload"
sed -n 's/^  clients saw: /    clients saw: /p; s/^  after the fault: /    after the fault: /p' <<<"$fault_report"
printf '  %-44s %s\n' "new client after the fault:" "$new_client rows in pgbench_accounts"
proxy_alive && echo "  the proxy is still running; stopping everything now" ||
  echo "  the proxy DIED during the demo (log: $PROXY_LOG)"
