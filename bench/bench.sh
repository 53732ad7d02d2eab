#!/usr/bin/env bash
# Throughput and proxy CPU cost, side by side in one run: pgbench select-only against
# PostgreSQL directly, through switchyard (1 and 2 workers) and through Debian's PgBouncer, in
# session pooling and in transaction pooling (BENCH_POOL_SIZE server connections for all the
# clients). Prints figures only; it asserts nothing.
#
# usage: bench.sh BINARY
# environment (defaults in brackets):
#   BENCH_CLIENTS [16]  BENCH_THREADS [2]  BENCH_SECONDS [15]  BENCH_MODE [simple]
#   BENCH_SCALE [10]    BENCH_WORKERS ["1 2"]: switchyard --workers values to measure
#   BENCH_ROUTED [1]    also measure switchyard routing reads to two streaming replicas
#   BENCH_POOL_SIZE [4] server connections in the transaction-pooling runs
#   BENCH_CAPTURE [1]   also measure each switchyard run with traffic capture on (--capture to a
#                       scratch dir), printed beside the same run without it
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../scripts/pgcluster.sh"
binary=${1:?usage: bench.sh BINARY}
clients=${BENCH_CLIENTS:-16}
threads=${BENCH_THREADS:-2}
seconds=${BENCH_SECONDS:-15}
mode=${BENCH_MODE:-simple}
scale=${BENCH_SCALE:-10}
read -r -a worker_counts <<<"${BENCH_WORKERS:-1 2}"
ticks_per_second=$(getconf CLK_TCK)

pgc_init
port=$(free_port)
pg_create_primary "$PGC_ROOT/primary" "$port"
pg_start "$PGC_ROOT/primary"
pgc_log "pgbench -i -s $scale (direct)"
"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s "$scale" -q postgres \
  >"$PGC_ROOT/init.txt" 2>&1 || { cat "$PGC_ROOT/init.txt"; pgc_die "pgbench -i failed"; }

# run_pgbench PORT NAME: select-only pgbench; prints "transactions tps" (tps excludes the
# initial connection time, as pgbench reports it).
run_pgbench() {
  local out=$PGC_ROOT/pgbench-$2.txt
  if ! "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$1" -U postgres -n -S -M "$mode" -c "$clients" \
    -j "$threads" -T "$seconds" postgres >"$out" 2>&1; then
    tail -n 5 "$out" >&2
    pgc_log "pgbench against $2 failed"
    echo "0 0"
    return 0
  fi
  echo "$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")" \
    "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out")"
}

results=()  # "name|tps|cpu seconds|cpu us per transaction"

# measure NAME PROXY_BINARY [serve flags]: one proxy, one pgbench run, its CPU time.
measure() {
  local name=$1 proxy=$2
  shift 2
  proxy_start "$proxy" "$port" "$PGC_ROOT/$name.log" "$@"
  local before after transactions tps cpu per_txn
  before=$(cpu_ticks "$PROXY_PID")
  read -r transactions tps < <(run_pgbench "$PROXY_PORT" "$name")
  after=$(cpu_ticks "$PROXY_PID")
  proxy_stop
  cpu=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" 'BEGIN {printf "%.2f", t / hz}')
  per_txn=$(awk -v c="$cpu" -v n="$transactions" 'BEGIN {if (n > 0) printf "%.1f", c * 1e6 / n; else print "-"}')
  results+=("$name|$tps|$cpu|$per_txn")
  pgc_log "$name: $tps tps, proxy CPU ${cpu}s, ${per_txn} us/transaction"
}

pgc_log "warm-up (direct, 3 s, not reported)"
"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -S -c "$clients" -j "$threads" -T 3 \
  postgres >/dev/null 2>&1 || true

read -r transactions tps < <(run_pgbench "$port" direct)
results+=("direct|$tps|-|-")
pgc_log "direct: $tps tps"
captured=()  # "name without capture|name with capture"
for workers in "${worker_counts[@]}"; do
  name=$(basename "$binary")-w$workers
  measure "$name" "$binary" --auth-type trust --workers "$workers"
  if [[ ${BENCH_CAPTURE:-1} == 1 ]]; then
    # The same flags plus capture of every session, into files in the scratch dir (removed
    # between runs so the disk holds one run's files at a time).
    measure "$name-capture" "$binary" --auth-type trust --workers "$workers" \
      --capture "$PGC_ROOT/capture"
    du -sh "$PGC_ROOT/capture" | sed 's/^/captured: /' >&2
    rm -rf "$PGC_ROOT/capture"
    captured+=("$name|$name-capture")
  fi
done
if [[ ${BENCH_ROUTED:-1} == 1 ]]; then
  # Reads routed to two streaming replicas of the same primary (issue 4): the proxy now parses
  # and classifies every statement (the classification cache makes that cheap) and balances.
  replica1_port=$(free_port)
  replica2_port=$(free_port)
  pg_create_replica "$port" "$PGC_ROOT/replica1" "$replica1_port"
  pg_create_replica "$port" "$PGC_ROOT/replica2" "$replica2_port"
  pg_start "$PGC_ROOT/replica1"
  pg_start "$PGC_ROOT/replica2"
  measure "$(basename "$binary")-routed-w2" "$binary" --auth-type trust --workers 2 \
    --replica "127.0.0.1:$replica1_port" --replica "127.0.0.1:$replica2_port" \
    --health-user postgres
  pg_stop "$PGC_ROOT/replica1"
  pg_stop "$PGC_ROOT/replica2"
fi
pool_size=${BENCH_POOL_SIZE:-4}
measure "$(basename "$binary")-transaction-w2" "$binary" --auth-type trust --workers 2 \
  --pool-mode transaction --pool-size "$pool_size"
measure pgbouncer-transaction pgbouncer --auth-type trust --pool-mode transaction \
  --pool-size "$pool_size"
measure pgbouncer-session pgbouncer --auth-type trust

echo
echo "pgbench -S -M $mode -c $clients -j $threads -T $seconds, scale $scale, $(nproc) CPUs" \
  "(pgbench, PostgreSQL and the proxy share them)"
printf '%-22s %12s %16s %18s\n' target tps "proxy CPU (s)" "proxy CPU us/txn"
for row in "${results[@]}"; do
  IFS='|' read -r name tps cpu per_txn <<<"$row"
  printf '%-22s %12s %16s %18s\n' "$name" "$tps" "$cpu" "$per_txn"
done
# tps_of NAME: the tps measured for NAME.
tps_of() {
  local row name tps
  for row in "${results[@]}"; do
    IFS='|' read -r name tps _ <<<"$row"
    [[ $name == "$1" ]] && echo "$tps"
  done
  return 0
}
for pair in "${captured[@]}"; do
  IFS='|' read -r off on <<<"$pair"
  awk -v name="$on" -v off="$(tps_of "$off")" -v on="$(tps_of "$on")" 'BEGIN {
    if (off + 0 > 0) printf "%s: %.0f tps with capture, %.0f without (%+.1f%%)\n", name, on, off,
      (on - off) * 100 / off }'
done
# cpu_of NAME: the proxy CPU us/transaction measured for NAME.
cpu_of() {
  local row name per_txn
  for row in "${results[@]}"; do
    IFS='|' read -r name _ _ per_txn <<<"$row"
    [[ $name == "$1" ]] && echo "$per_txn"
  done
  return 0
}
for row in "${results[@]}"; do
  IFS='|' read -r name _ _ per_txn <<<"$row"
  [[ $name != direct && $name != pgbouncer-* ]] || continue
  against=pgbouncer-session
  [[ $name == *-transaction-* ]] && against=pgbouncer-transaction
  awk -v name="$name" -v s="$per_txn" -v b="$(cpu_of "$against")" -v against="$against" 'BEGIN {
    if (s + 0 > 0 && b + 0 > 0) printf "%s / %s, CPU per transaction: %.2f\n", name, against, s / b }'
done
