#!/usr/bin/env bash
# Capture through switchyard, replay against a fresh cluster (issue 5, "what it must show" 1):
# a psql script (DDL, inserts, COPY FROM STDIN, PREPARE/EXECUTE, selects, update, delete) and a
# pgbench -M prepared run are captured with `serve --capture`; a second cluster prepared the same
# way (pgbench -i) gets `switchyard replay` of the capture, which must report no divergence, no
# error and no stall. (pgbench runs one client: its random account numbers travel in the captured
# Bind values, so the replay is deterministic.)
#
# usage: capture_replay_test.sh BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/pgcluster.sh"
binary=${1:?usage: capture_replay_test.sh BINARY}

pgc_init
port_a=$(free_port)
port_b=$(free_port)
pg_create_primary "$PGC_ROOT/a" "$port_a"
pg_start "$PGC_ROOT/a"
pg_create_primary "$PGC_ROOT/b" "$port_b"
pg_start "$PGC_ROOT/b"
for port in "$port_a" "$port_b"; do
  "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s 1 -q postgres \
    >"$PGC_ROOT/init-$port.txt" 2>&1 || { cat "$PGC_ROOT/init-$port.txt"; pgc_fail "pgbench -i"; }
done

mkdir -p "$PGC_ROOT/capture"
proxy_start "$binary" "$port_a" "$PGC_ROOT/proxy.log" --auth-type trust --workers 2 \
  --capture "$PGC_ROOT/capture"
cat >"$PGC_ROOT/script.sql" <<'SQL'
CREATE TABLE items (id int primary key, name text, price numeric);
INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 50) g;
COPY items FROM STDIN;
1001	copied one	3.25
1002	copied two	4.75
\.
PREPARE by_id(int) AS SELECT name, price FROM items WHERE id = $1;
EXECUTE by_id(7);
EXECUTE by_id(1002);
SELECT count(*), sum(price) FROM items;
UPDATE items SET price = price + 1 WHERE id <= 10;
SELECT id, price FROM items WHERE id <= 12 ORDER BY id;
DELETE FROM items WHERE id > 1000;
SELECT count(*) FROM items;
SQL
"$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres \
  -d postgres -f "$PGC_ROOT/script.sql" >"$PGC_ROOT/psql.txt" 2>&1 ||
  { cat "$PGC_ROOT/psql.txt"; pgc_fail "the psql script through switchyard"; }
status=0
"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -M prepared -c 1 -t 100 \
  postgres >"$PGC_ROOT/pgbench.txt" 2>&1 || status=$?
pgc_check_pgbench capture "$PGC_ROOT/pgbench.txt" "$status"
proxy_stop

files=("$PGC_ROOT"/capture/*)
((${#files[@]} > 0)) || pgc_fail "no capture file was written"
report=$PGC_ROOT/replay.txt
status=0
"$binary" replay "${files[@]}" --target "127.0.0.1:$port_b" --user postgres >"$report" 2>&1 ||
  status=$?
summary=$(tail -n 1 "$report")
echo "replay of the capture against a fresh cluster: $summary"
((status == 0)) || { cat "$report" >&2; pgc_fail "replay exited $status"; }
[[ $summary =~ ^sessions=([0-9]+)\ messages=([0-9]+)\ divergences=0\ errors=0\ stalls=0$ ]] ||
  { cat "$report" >&2; pgc_fail "the replay diverged: $summary"; }
((BASH_REMATCH[1] >= 3 && BASH_REMATCH[2] >= 1000)) ||
  pgc_fail "the replay covered too little: $summary"
[[ $("$PG_BINDIR/psql" -X -At -h 127.0.0.1 -p "$port_b" -U postgres -d postgres \
  -c "SELECT count(*) FROM pgbench_history") == 100 ]] || pgc_fail "the replay did not write"
echo "capture and replay: ok"
