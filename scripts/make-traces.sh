#!/usr/bin/env bash
# Records the sample traces in traces/ (see traces/README.md): a throwaway PostgreSQL 15 primary
# (scripts/pgcluster.sh), `switchyard serve --capture DIR` in front of it, and one workload per
# capture, each written to its own small file:
#   pgbench-simple.trace     pgbench -M simple   -c 2 -t 10
#   pgbench-extended.trace   pgbench -M extended -c 2 -t 10
#   pgbench-prepared.trace   pgbench -M prepared -c 2 -t 10
#   psql-copy-listen.trace   a psql session: DDL, COPY FROM STDIN, LISTEN/NOTIFY, PREPARE/EXECUTE
# The pgbench tables are made first with `pgbench -i -s 1` straight against the server (not
# captured: its COPY of 100,000 rows would make the files large).
#
# usage: make-traces.sh BINARY [OUTPUT_DIR]   (run as root; OUTPUT_DIR defaults to traces/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/pgcluster.sh"
binary=${1:?usage: make-traces.sh BINARY [OUTPUT_DIR]}
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
out=${2:-$here/../traces}
mkdir -p "$out"
out=$(cd "$out" && pwd)

pgc_init
port=$(free_port)
pg_create_primary "$PGC_ROOT/primary" "$port"
pg_start "$PGC_ROOT/primary"
psql_at "$port" -c 'create database bench'
"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s 1 -q bench \
  >"$PGC_ROOT/init.txt" 2>&1 || { cat "$PGC_ROOT/init.txt"; pgc_die "pgbench -i failed"; }

# capture NAME COMMAND...: runs COMMAND (which talks to 127.0.0.1:$PROXY_PORT) through a fresh
# proxy that captures into its own directory, then keeps the one file it wrote as NAME.trace.
capture() {
  local name=$1
  shift
  local dir=$PGC_ROOT/capture-$name
  proxy_start "$binary" "$port" "$PGC_ROOT/proxy-$name.log" --auth-type trust --workers 2 \
    --capture "$dir"
  wait_for_log "$PROXY_LOG" 'event=capture state=on' 10 "$PROXY_PID" ||
    pgc_die "the proxy did not log event=capture state=on"
  "$@" >"$PGC_ROOT/$name.txt" 2>&1 || { cat "$PGC_ROOT/$name.txt"; pgc_die "$name failed"; }
  proxy_stop
  local files=("$dir"/*)
  ((${#files[@]} == 1)) || pgc_die "$name: expected one capture file, got ${#files[@]}"
  cp "${files[0]}" "$out/$name.trace"
  chmod 644 "$out/$name.trace"
  echo "$name.trace: $(stat -c %s "$out/$name.trace") bytes"
}

run_pgbench() {
  "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -n -M "$1" -c 2 -t 10 bench
}

run_psql() {
  "$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -d bench <<'EOF'
create table items (id int primary key, name text, price numeric);
insert into items values (1, 'apple', 1.5), (2, 'pear', 2.25);
copy items (id, name, price) from stdin;
3	copied one	10
4	copied two	20
\.
select id, name, price from items order by id;
listen price_changes;
notify price_changes, 'pear';
update items set price = price + 1 where id = 2;
prepare by_id (int) as select name, price from items where id = $1;
execute by_id(2);
execute by_id(3);
deallocate by_id;
begin;
delete from items where id > 3;
commit;
unlisten price_changes;
alter table items add column stock int default 0;
select count(*), sum(price) from items;
drop table items;
EOF
}

capture pgbench-simple run_pgbench simple
capture pgbench-extended run_pgbench extended
capture pgbench-prepared run_pgbench prepared
capture psql-copy-listen run_psql
