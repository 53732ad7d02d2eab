#!/usr/bin/env bash
# `switchyard replay TRACE --target sim --seeds 1..N --swarm` over every sample trace in traces/,
# twice: each run must be clean (exit 0: no divergence, no new error, no stall, no oracle
# violation) and both runs must print the same line, hash included, for every seed.
#
# usage: sim_traces_test.sh BINARY TRACES_DIR SEEDS
set -euo pipefail
binary=${1:?usage: sim_traces_test.sh BINARY TRACES_DIR SEEDS}
traces=${2:?usage: sim_traces_test.sh BINARY TRACES_DIR SEEDS}
seeds=${3:?usage: sim_traces_test.sh BINARY TRACES_DIR SEEDS}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
shopt -s nullglob
files=("$traces"/*.trace)
((${#files[@]} > 0)) || { echo "FAIL: no trace in $traces" >&2; exit 1; }
for trace in "${files[@]}"; do
  name=$(basename "$trace" .trace)
  for run in 1 2; do
    status=0
    "$binary" replay "$trace" --target sim --seeds "1..$seeds" --swarm >"$work/$name.$run" 2>&1 ||
      status=$?
    if ((status != 0)); then
      echo "FAIL: $name run $run exited $status:" >&2
      grep -E '^(violation|seed=.*FAILED|  #[0-9]| +(statement|captured|replayed):)' \
        "$work/$name.$run" | head -n 20 >&2
      failed=1
    fi
  done
  grep -o '^seed=[0-9]* .*hash=[0-9a-f]*' "$work/$name.1" >"$work/$name.hashes.1"
  grep -o '^seed=[0-9]* .*hash=[0-9a-f]*' "$work/$name.2" >"$work/$name.hashes.2"
  count=$(wc -l <"$work/$name.hashes.1")
  if ((count != seeds)); then
    echo "FAIL: $name: $count seed lines, expected $seeds" >&2
    failed=1
  elif ! diff -u "$work/$name.hashes.1" "$work/$name.hashes.2" >&2; then
    echo "FAIL: $name: two runs of the same seeds differ" >&2
    failed=1
  else
    echo "ok: $name: seeds 1..$seeds deterministic; $(tail -n 1 "$work/$name.1")"
  fi
done
exit "$failed"
