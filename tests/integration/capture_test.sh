#!/usr/bin/env bash
# Traffic capture through `switchyard serve --capture DIR` against a real server that demands a
# cleartext password (so the proxy sends it): a psql script (DDL, inserts, selects, COPY FROM
# STDIN, PREPARE/EXECUTE, SET), pgbench -i and a short pgbench -M prepared run, and a session
# that lives through SIGUSR1 switching capture off and on. Small files force rotation. Then the
# files are read back with `switchyard trace` (capture_check.py): every file alone, every
# session there, nothing dropped, no password anywhere.
#
# usage: capture_test.sh BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/pgcluster.sh"
binary=${1:?usage: capture_test.sh BINARY}
password=Capture-Pw-9f3e7a

pgc_init
port=$(free_port)
dir=$PGC_ROOT/primary
pg_create_primary "$dir" "$port"
pg_start "$dir"
psql_at "$port" <<EOF
create role capuser login password '$password';
create database capdb owner capuser;
EOF
pg_require_password "$dir" capuser password  # cleartext: the proxy must send the password itself
printf '"capuser" "%s"\n' "$password" >"$PGC_ROOT/users.txt"
chmod 600 "$PGC_ROOT/users.txt"

capture=$PGC_ROOT/capture
proxy_start "$binary" "$port" "$PGC_ROOT/proxy.log" --auth-type md5 --users "$PGC_ROOT/users.txt" \
  --workers 2 --capture "$capture" --capture-file-bytes 262144 --capture-files-kept 100000
wait_for_log "$PROXY_LOG" 'event=capture state=on' 10 "$PROXY_PID" ||
  pgc_die "the proxy did not log event=capture state=on"
export PGPASSWORD=$password
via_proxy=(-h 127.0.0.1 -p "$PROXY_PORT" -U capuser -d capdb)

"$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "${via_proxy[@]}" >"$PGC_ROOT/psql.txt" 2>&1 <<'EOF' ||
set work_mem = '8MB';
create table items (id int primary key, name text, price numeric);
insert into items values (1, 'apple', 1.5), (2, 'pear', 2.25);
insert into items select g, 'item ' || g, g * 0.1 from generate_series(3, 500) g;
select count(*), sum(price) from items;
copy items (id, name, price) from stdin;
1001	copied one	10
1002	copied two	20
\.
select name from items where id = 1002;
prepare by_id (int) as select name, price from items where id = $1;
execute by_id(1);
execute by_id(1001);
deallocate by_id;
update items set price = price + 1 where id <= 10;
delete from items where id > 1000;
drop table items;
EOF
  { cat "$PGC_ROOT/psql.txt"; pgc_die "the psql script through the proxy failed"; }
echo "ok: psql script (DDL, inserts, selects, COPY FROM STDIN, PREPARE/EXECUTE) through the proxy"

python3 "$here/capture_toggle.py" --port "$PROXY_PORT" --user capuser --password "$password" \
  --database capdb --proxy-pid "$PROXY_PID" --proxy-log "$PROXY_LOG" --capture-dir "$capture" \
  --old-files "$PGC_ROOT/old-files.txt"

"$PG_BINDIR/pgbench" "${via_proxy[@]}" -i -s 1 -q >"$PGC_ROOT/init.txt" 2>&1 ||
  { cat "$PGC_ROOT/init.txt"; pgc_die "pgbench -i through the proxy failed"; }
"$PG_BINDIR/pgbench" "${via_proxy[@]}" -n -M prepared -c 4 -j 2 -T 3 >"$PGC_ROOT/pgbench.txt" 2>&1 ||
  { cat "$PGC_ROOT/pgbench.txt"; pgc_die "pgbench -M prepared through the proxy failed"; }
transactions=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
  "$PGC_ROOT/pgbench.txt")
((transactions > 0)) || pgc_die "pgbench processed no transaction"
echo "ok: pgbench -M prepared -c 4 -T 3: $transactions transactions"

# A clean stop writes what is queued and closes the files.
proxy_stop
grep -q 'event=capture state=off dir=.* reason=shutdown' "$PROXY_LOG" ||
  pgc_die "no event=capture state=off at shutdown: $(tail -n 5 "$PROXY_LOG")"
grep -q 'event=capture_file ' "$PROXY_LOG" || pgc_die "no event=capture_file line in the log"

# pgbench -M prepared runs 7 statements per transaction; the psql script 15 Query messages;
# sessions: psql, the toggled one, pgbench -i and the 4 clients of the run (pgbench also logs
# in once more to check the tables).
python3 "$here/capture_check.py" --binary "$binary" --dir "$capture" --password "$password" \
  --old-files "$PGC_ROOT/old-files.txt" --min-sessions 7 --min-queries 15 \
  --min-command-completes $((7 * transactions))
echo "capture: all checks passed"
