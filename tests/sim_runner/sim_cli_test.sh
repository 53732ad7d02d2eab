#!/usr/bin/env bash
# `switchyard sim` as a user runs it: determinism, a clean seed budget, and every mutant caught.
#   sim_cli_test.sh BINARY determinism
#   sim_cli_test.sh BINARY seeds FIRST..LAST [--swarm]
#   sim_cli_test.sh BINARY mutants LAST_SEED
set -euo pipefail
binary=$1
what=$2
shift 2

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

hash_of() { sed -n 's/.* hash=\([0-9a-f]*\)$/\1/p' | tail -n 1; }

case "$what" in
  determinism)
    # The same seed gives the same hash (in one process, and in two separate ones); another
    # seed gives another.
    first=$("$binary" sim --seed 42 --swarm | hash_of)
    second=$("$binary" sim --seed 42 --swarm | hash_of)
    other=$("$binary" sim --seed 43 --swarm | hash_of)
    echo "seed 42: $first $second; seed 43: $other"
    [[ -n $first && $first == "$second" ]] || fail "seed 42 gave $first, then $second"
    [[ -n $other && $other != "$first" ]] || fail "seeds 42 and 43 both gave $first"
    "$binary" sim --seed 42 --swarm --check-determinism | tail -n 1 | grep -q "same hash=$first" ||
      fail "--check-determinism did not reproduce hash $first"
    ;;
  seeds)
    # A fixed budget of seeds must run clean; the summary line is what CI logs show.
    out=$("$binary" sim --seeds "$@") || {
      echo "$out" | grep -E '^violation' | head -n 20
      fail "violations in sim --seeds $*"
    }
    echo "$out" | tail -n 1
    echo "$out" | tail -n 1 | grep -q ' failed=0 ' || fail "summary does not say failed=0"
    ;;
  mutants)
    # Every mutant must be caught by some seed in 1..LAST (swarm options); the first catching
    # seed and the oracle that caught it are printed.
    last=$1
    mapfile -t mutants < <("$binary" sim --list-mutants)
    (( ${#mutants[@]} >= 13 )) || fail "only ${#mutants[@]} mutants"
    for mutant in "${mutants[@]}"; do
      status=0
      out=$("$binary" sim --seeds "1..$last" --swarm --mutant "$mutant" --stop-on-failure) ||
        status=$?
      violation=$(echo "$out" | grep -m 1 '^violation' || true)
      [[ $status -eq 1 && -n $violation ]] || fail "mutant $mutant survived seeds 1..$last"
      seed=$(echo "$violation" | sed -n 's/^violation seed=\([0-9]*\) oracle=\([a-z_]*\).*/\1 by \2/p')
      echo "$mutant: caught at seed $seed: ${violation:0:160}"
    done
    ;;
  *)
    fail "unknown check '$what'"
    ;;
esac
