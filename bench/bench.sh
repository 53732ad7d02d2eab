#!/usr/bin/env bash
# Throughput and proxy CPU cost, side by side in one run: pgbench select-only against
# PostgreSQL directly, through switchyard (1 and 2 workers, with and without traffic capture,
# routing reads to two replicas, transaction pooling) and through Debian's PgBouncer in session
# and transaction pooling. Prints figures only; it asserts nothing.
#
# Two passes:
#   saturated   each target as fast as pgbench can drive it. Every target is measured
#               BENCH_ROUNDS times, the rounds interleaved (target 1, 2, ..., then again), and
#               the median of each figure is reported with the spread of CPU per transaction:
#               on a 2-CPU machine shared by pgbench, PostgreSQL and the proxy, single runs
#               differ by 10-20%.
#   equal rate  the proxies once more, each at the same fixed rate (pgbench -R). CPU per
#               transaction falls as load rises (more messages per wake-up and per system
#               call), so a target that is slower at saturation (routing: three servers on two
#               CPUs) would look dearer per transaction for that reason alone; at one rate they
#               are compared like for like.
#
# usage: bench.sh BINARY
# environment (defaults in brackets):
#   BENCH_CLIENTS [16]  BENCH_THREADS [2]  BENCH_SECONDS [10]  BENCH_MODE [simple]
#   BENCH_SCALE [10]    BENCH_ROUNDS [3]
#   BENCH_WORKERS ["1 2"]  switchyard --workers values to measure
#   BENCH_ROUTED [1]    also measure switchyard routing reads to two streaming replicas
#   BENCH_POOL_SIZE [4] server connections in the transaction-pooling runs
#   BENCH_CAPTURE [1]   also measure each switchyard session-pooling run with traffic capture on
#                       (--capture to a scratch dir), reported beside the same run without it
#   BENCH_RATE [auto]   the equal-rate pass's rate in tps; auto: 70% of the slowest proxy's
#                       saturated median; 0 skips the pass
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../scripts/pgcluster.sh"
binary=${1:?usage: bench.sh BINARY}
clients=${BENCH_CLIENTS:-16}
threads=${BENCH_THREADS:-2}
seconds=${BENCH_SECONDS:-10}
mode=${BENCH_MODE:-simple}
scale=${BENCH_SCALE:-10}
rounds=${BENCH_ROUNDS:-3}
read -r -a worker_counts <<<"${BENCH_WORKERS:-1 2}"
pool_size=${BENCH_POOL_SIZE:-4}
ticks_per_second=$(getconf CLK_TCK)
self=$(basename "$binary")

pgc_init
port=$(free_port)
pg_create_primary "$PGC_ROOT/primary" "$port"
pg_start "$PGC_ROOT/primary"
pgc_log "pgbench -i -s $scale (direct)"
"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s "$scale" -q postgres \
  >"$PGC_ROOT/init.txt" 2>&1 || { cat "$PGC_ROOT/init.txt"; pgc_die "pgbench -i failed"; }

# The targets: "name|proxy|serve flags" (flags split on spaces; proxy "direct" is none).
targets=("direct|direct|")
captured=()  # "name without capture|name with capture"
for workers in "${worker_counts[@]}"; do
  targets+=("$self-w$workers|$binary|--auth-type trust --workers $workers")
  if [[ ${BENCH_CAPTURE:-1} == 1 ]]; then
    targets+=("$self-w$workers-capture|$binary|--auth-type trust --workers $workers --capture $PGC_ROOT/capture")
    captured+=("$self-w$workers|$self-w$workers-capture")
  fi
done
if [[ ${BENCH_ROUTED:-1} == 1 ]]; then
  # Reads routed to two streaming replicas of the same primary (issue 4): the proxy now parses
  # and classifies every statement (the classification cache makes that cheap) and balances.
  # The replicas run for the whole benchmark, so every target shares the machine with them.
  replica1_port=$(free_port)
  replica2_port=$(free_port)
  pg_create_replica "$port" "$PGC_ROOT/replica1" "$replica1_port"
  pg_create_replica "$port" "$PGC_ROOT/replica2" "$replica2_port"
  pg_start "$PGC_ROOT/replica1"
  pg_start "$PGC_ROOT/replica2"
  for workers in "${worker_counts[@]}"; do
    targets+=("$self-routed-w$workers|$binary|--auth-type trust --workers $workers --replica 127.0.0.1:$replica1_port --replica 127.0.0.1:$replica2_port --health-user postgres")
  done
fi
targets+=("$self-transaction-w2|$binary|--auth-type trust --workers 2 --pool-mode transaction --pool-size $pool_size")
targets+=("pgbouncer-transaction|pgbouncer|--auth-type trust --pool-mode transaction --pool-size $pool_size")
targets+=("pgbouncer-session|pgbouncer|--auth-type trust")

# run_pgbench PORT NAME [pgbench flags]: select-only pgbench; prints "transactions tps" (tps
# excludes the initial connection time, as pgbench reports it).
run_pgbench() {
  local port=$1 name=$2
  shift 2
  local out=$PGC_ROOT/pgbench-$name.txt
  if ! "$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -S -M "$mode" -c "$clients" \
    -j "$threads" -T "$seconds" "$@" postgres >"$out" 2>&1; then
    tail -n 5 "$out" >&2
    pgc_log "pgbench against $name failed"
    echo "0 0"
    return 0
  fi
  echo "$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")" \
    "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out")"
}

# measure PASS TARGET [pgbench flags]: one proxy, one pgbench run, its CPU time; appends
# "name|tps|cpu seconds|cpu us per transaction" to $PGC_ROOT/PASS.
measure() {
  local pass=$1 name proxy flags
  IFS='|' read -r name proxy flags <<<"$2"
  shift 2
  local -a flag_words
  read -r -a flag_words <<<"$flags"
  proxy_start "$proxy" "$port" "$PGC_ROOT/$name.log" "${flag_words[@]}"
  local before=0 after=0 transactions tps cpu=- per_txn=-
  [[ -n $PROXY_PID ]] && before=$(cpu_ticks "$PROXY_PID")
  read -r transactions tps < <(run_pgbench "$PROXY_PORT" "$name" "$@")
  if [[ -n $PROXY_PID ]]; then
    after=$(cpu_ticks "$PROXY_PID")
    cpu=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" 'BEGIN {printf "%.2f", t / hz}')
    per_txn=$(awk -v c="$cpu" -v n="$transactions" \
      'BEGIN {if (n > 0) printf "%.1f", c * 1e6 / n; else print "-"}')
  fi
  proxy_stop
  if [[ -d $PGC_ROOT/capture ]]; then
    du -sh "$PGC_ROOT/capture" | sed "s/^/$name captured: /" >&2
    rm -rf "$PGC_ROOT/capture"  # the disk holds one run's files at a time
  fi
  echo "$name|$tps|$cpu|$per_txn" >>"$PGC_ROOT/$pass"
  pgc_log "$pass $name: $tps tps, proxy CPU ${cpu}s, ${per_txn} us/transaction"
}

# median PASS NAME FIELD: the median of one figure over a target's runs (field 2 tps, 4 CPU per
# transaction); "min-max" with FIELD given as "4range".
median() {
  local field=${3%range}
  awk -F'|' -v name="$2" -v f="$field" -v range="${3#"$field"}" '
    $1 == name && $f != "-" { v[n++] = $f + 0 }
    END {
      if (n == 0) { print "-"; exit }
      for (i = 1; i < n; i++) for (j = i; j > 0 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
      if (range != "") printf "%.1f-%.1f\n", v[0], v[n-1]
      else printf "%.1f\n", (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
    }' "$PGC_ROOT/$1"
}

# report PASS TITLE: the table of one pass and each switchyard target's CPU ratio to PgBouncer.
report() {
  local pass=$1 name spread against
  echo
  echo "$2"
  printf '%-28s %10s %18s %14s\n' target tps "proxy CPU us/txn" "(min-max)"
  for target in "${targets[@]}"; do
    name=${target%%|*}
    grep -q "^$name|" "$PGC_ROOT/$pass" || continue
    spread=$(median "$pass" "$name" 4range)
    [[ $spread == -* ]] && spread=""
    printf '%-28s %10s %18s %14s\n' "$name" "$(median "$pass" "$name" 2)" \
      "$(median "$pass" "$name" 4)" "$spread"
  done
  for target in "${targets[@]}"; do
    name=${target%%|*}
    [[ $name != direct && $name != pgbouncer-* ]] || continue
    grep -q "^$name|" "$PGC_ROOT/$pass" || continue
    against=pgbouncer-session
    [[ $name == *-transaction-* ]] && against=pgbouncer-transaction
    awk -v name="$name" -v s="$(median "$pass" "$name" 4)" -v b="$(median "$pass" "$against" 4)" \
      -v against="$against" 'BEGIN {
      if (s + 0 > 0 && b + 0 > 0) printf "%s / %s, CPU per transaction: %.2f\n", name, against, s / b }'
  done
}

pgc_log "warm-up (direct, 3 s, not reported)"
"$PG_BINDIR/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -S -c "$clients" -j "$threads" -T 3 \
  postgres >/dev/null 2>&1 || true

for ((round = 1; round <= rounds; round++)); do
  pgc_log "saturated pass, round $round of $rounds"
  for target in "${targets[@]}"; do measure saturated "$target"; done
done

rate=${BENCH_RATE:-auto}
if [[ $rate == auto ]]; then
  rate=$(for target in "${targets[@]}"; do
    name=${target%%|*}
    [[ $name == direct || $name == *-capture ]] || median saturated "$name" 2
  done | sort -n | awk 'NR == 1 && $1 > 0 {printf "%d\n", $1 * 0.7}')
fi
if [[ -n $rate && $rate != 0 ]]; then
  pgc_log "equal-rate pass: pgbench -R $rate"
  for target in "${targets[@]}"; do
    name=${target%%|*}
    [[ $name == direct || $name == *-capture ]] || measure rate "$target" -R "$rate"
  done
fi

header="pgbench -S -M $mode -c $clients -j $threads -T $seconds, scale $scale, $(nproc) CPUs (pgbench, PostgreSQL and the proxy share them)"
report saturated "$header; saturated, median of $rounds interleaved rounds"
for pair in "${captured[@]}"; do
  IFS='|' read -r off on <<<"$pair"
  awk -v name="$on" -v off="$(median saturated "$off" 2)" -v on="$(median saturated "$on" 2)" 'BEGIN {
    if (off + 0 > 0) printf "%s: %.0f tps with capture, %.0f without (%+.1f%%)\n", name, on, off,
      (on - off) * 100 / off }'
done
if [[ -s $PGC_ROOT/rate ]]; then
  report rate "The same at an equal rate for every proxy: pgbench -R $rate (one run each)"
fi
