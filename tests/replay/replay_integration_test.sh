#!/usr/bin/env bash
# `switchyard replay` end to end against a throwaway PostgreSQL 15 cluster:
# - a recorded session mix (DDL, inserts, COPY FROM STDIN, prepared statements, pipelining,
#   errors, EXPLAIN ANALYZE), split over two rotated trace files, replays without divergence
#   into a fresh database, logging in with SCRAM-SHA-256, and writes an HTML report;
# - the same trace against a database where one row differs reports the statement and the row
#   (both versions) and exits non-zero;
# - a trace with a byte flipped mid-file is refused, naming the file, the record and its offset;
# - a session blocked on another captured session's lock replays as captured with the default
#   stall timeout, and is cancelled and reported, without hanging, with a short one.
#
# usage: replay_integration_test.sh SWITCHYARD_BINARY TRACE_GEN   (run as root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/pgcluster.sh"
binary=${1:?usage: replay_integration_test.sh SWITCHYARD_BINARY TRACE_GEN}
generator=${2:?usage: replay_integration_test.sh SWITCHYARD_BINARY TRACE_GEN}

pgc_init
port=$(free_port)
dir=$PGC_ROOT/primary
pg_create_primary "$dir" "$port"
pg_start "$dir"
psql_at "$port" <<'EOF'
create role replayer login password 'replayer-secret';
create database captured;
create database target_same owner replayer;
create database target_diff owner replayer;
create database target_lock owner replayer;
EOF
for db in captured target_same target_diff target_lock; do
  PGC_DB=$db psql_at "$port" <<'EOF'
create table reference (id int primary key, label text);
insert into reference values (1, 'a'), (2, 'b'), (3, 'c');
alter table reference owner to replayer;
EOF
done
PGC_DB=target_diff psql_at "$port" -c "update reference set label = 'B' where id = 2"
pg_require_password "$dir" replayer scram-sha-256
work=$PGC_ROOT/work
mkdir -p "$work"
printf 'replayer-secret\n' >"$work/password"
chmod 600 "$work/password"

pgc_log "recording the traces"
"$generator" --port "$port" --database captured --scenario basic --out "$work/basic-1.syt" \
  --out2 "$work/basic-2.syt"
"$generator" --port "$port" --database captured --scenario lock --out "$work/lock.syt"

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
expect_in() {  # expect_in NAME TEXT NEEDLE
  [[ $2 == *"$3"* ]] || fail "$1: output lacks '$3'"
}

# replay NAME TRACE... -- FLAGS...: runs the binary (never longer than 120 s), sets $out, $status.
replay() {
  local name=$1 started
  shift
  started=$(date +%s)
  set +e
  out=$(timeout 120 "$binary" replay "$@" --target "127.0.0.1:$port" --user replayer \
    --password-file "$work/password" 2>&1)
  status=$?
  set -e
  elapsed=$(($(date +%s) - started))
  echo "--- $name (exit $status, ${elapsed}s)"
  echo "$out"
  [[ $status != 124 ]] || fail "$name: replay hung (killed after 120 s)"
}
summary() {  # the last line of the output
  tail -n 1 <<<"$out"
}

replay same "$work/basic-1.syt" "$work/basic-2.syt" --database target_same --speed max \
  --report "$work/report.html"
[[ $status == 0 ]] || fail "same: exit $status, want 0"
[[ $(summary) =~ ^sessions=2\ messages=[0-9]+\ divergences=0\ errors=0\ stalls=0$ ]] ||
  fail "same: summary '$(summary)'"
expect_in same "$out" "22012  new 0, also captured 1"
expect_in same "$out" "42601  new 0, also captured 1"
grep -q '<svg' "$work/report.html" || fail "same: the HTML report has no SVG chart"
grep -q 'divergences=0' "$work/report.html" || fail "same: the HTML report lacks the summary"

replay diff "$work/basic-1.syt" "$work/basic-2.syt" --database target_diff --speed max
[[ $status == 1 ]] || fail "diff: exit $status, want 1"
[[ $(summary) =~ divergences=1\ errors=0\ stalls=0$ ]] || fail "diff: summary '$(summary)'"
expect_in diff "$out" "row-values"
expect_in diff "$out" "statement: SELECT id, label FROM reference ORDER BY id"
expect_in diff "$out" "captured:  ('2', 'b')"
expect_in diff "$out" "replayed:  ('2', 'B')"

cp "$work/basic-1.syt" "$work/damaged.syt"
size=$(stat -c %s "$work/damaged.syt")
python3 - "$work/damaged.syt" "$((size / 2))" <<'EOF'
import sys
path, offset = sys.argv[1], int(sys.argv[2])
data = bytearray(open(path, "rb").read())
data[offset] ^= 0x5A
open(path, "wb").write(data)
EOF
replay damaged "$work/damaged.syt" --database target_same --speed max
[[ $status != 0 && $status != 1 ]] || fail "damaged: exit $status, want a trace error (3)"
expect_in damaged "$out" "damaged.syt"
[[ $out =~ record\ [0-9]+\ at\ byte\ offset\ [0-9]+ ]] || fail "damaged: no record and offset"

replay lock-waits "$work/lock.syt" --database target_lock
[[ $status == 0 ]] || fail "lock-waits: exit $status, want 0"
[[ $(summary) == "sessions=2 messages=7 divergences=0 errors=0 stalls=0" ]] ||
  fail "lock-waits: summary '$(summary)'"

replay lock-stalls "$work/lock.syt" --database target_lock --stall-timeout 1000
[[ $status == 1 ]] || fail "lock-stalls: exit $status, want 1"
[[ $(summary) == "sessions=2 messages=7 divergences=0 errors=0 stalls=1" ]] ||
  fail "lock-stalls: summary '$(summary)'"
expect_in lock-stalls "$out" "SELECT count(*) FROM reference; cancelled"
((elapsed < 30)) || fail "lock-stalls: took ${elapsed}s"

if ((failures)); then
  echo "replay: $failures check(s) failed"
  exit 1
fi
echo "replay: all checks passed"
