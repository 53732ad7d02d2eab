#!/usr/bin/env bash
# The simulator's speed (issue 3): simulated client queries answered per wall-clock second on
# ONE core, and the simulated-to-wall time ratio, for the standard scenario and for swarm
# options. Figures only: nothing here passes or fails on speed.
#   sim-speed.sh BINARY [SEEDS]
set -euo pipefail
binary=$1
seeds=${2:-1..200}
pin=()
if command -v taskset > /dev/null; then pin=(taskset -c 0); fi
echo "switchyard sim speed, one core, seeds $seeds (target: 50000 queries per wall second)"
for mode in standard swarm; do
  extra=()
  [[ $mode == swarm ]] && extra=(--swarm)
  line=$("${pin[@]}" "$binary" sim --seeds "$seeds" --no-fork "${extra[@]}" | tail -n 1)
  printf '%-9s %s\n' "$mode" "$line"
done
