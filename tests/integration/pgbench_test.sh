#!/usr/bin/env bash
# pgbench through the proxy: initialization, then 8 clients in each query mode (simple,
# extended, prepared). Every run must exit 0 with no failed transaction and no aborted client,
# and the database must prove that each transaction pgbench counted was applied exactly once:
# one pgbench_history row per transaction, and the balances of accounts, tellers and branches
# all summing to the sum of the history's deltas (-n: pgbench must not truncate the history).
#
# usage (via with_proxy.sh, which provides PROXY_PORT and PRIMARY_PORT):
#   with_proxy.sh BINARY -- pgbench_test.sh
set -euo pipefail
: "${PROXY_PORT:?run me through with_proxy.sh}" "${PRIMARY_PORT:?}" "${TEST_TMP:?}"
bindir=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
seconds=${PGBENCH_SECONDS:-8}
via_proxy=(-h 127.0.0.1 -p "$PROXY_PORT" -U postgres)

fail() {
  echo "FAIL: $*"
  exit 1
}
direct_value() {
  "$bindir/psql" -X -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -d postgres -Atc "$1"
}

"$bindir/pgbench" "${via_proxy[@]}" -i -s 2 -q postgres >"$TEST_TMP/init.txt" 2>&1 ||
  { cat "$TEST_TMP/init.txt"; fail "pgbench -i through the proxy"; }
accounts=$(direct_value 'select count(*) from pgbench_accounts')
[[ $accounts == 200000 ]] || fail "pgbench -i through the proxy made $accounts accounts, not 200000"
echo "ok: pgbench -i -s 2 through the proxy (200000 accounts)"

total=0
for mode in simple extended prepared; do
  out=$TEST_TMP/pgbench-$mode.txt
  status=0
  "$bindir/pgbench" "${via_proxy[@]}" -n -c 8 -j 2 -T "$seconds" -M "$mode" postgres >"$out" 2>&1 ||
    status=$?
  processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out")
  if ((status != 0)) || ! grep -q '^number of failed transactions: 0 ' "$out" ||
    grep -qi 'aborted' "$out" || [[ -z $processed ]] || ((processed == 0)); then
    cat "$out"
    fail "pgbench -M $mode (exit $status)"
  fi
  echo "ok: pgbench -M $mode -c 8 -j 2 -T $seconds: $processed transactions, $tps tps, 0 failed"
  total=$((total + processed))
done

history=$(direct_value 'select count(*) from pgbench_history')
[[ $history == "$total" ]] ||
  fail "pgbench counted $total transactions but pgbench_history has $history rows"
sums=$(direct_value "select (select coalesce(sum(delta), 0) from pgbench_history) || ' ' ||
  (select sum(abalance) from pgbench_accounts) || ' ' || (select sum(tbalance) from pgbench_tellers)
  || ' ' || (select sum(bbalance) from pgbench_branches)")
read -r delta accounts tellers branches <<<"$sums"
[[ $delta == "$accounts" && $delta == "$tellers" && $delta == "$branches" ]] ||
  fail "balances disagree (history, accounts, tellers, branches): $sums"
echo "ok: $total transactions applied exactly once (history rows and all balance sums agree)"
