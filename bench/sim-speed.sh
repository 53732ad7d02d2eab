#!/usr/bin/env bash
# The simulator's speed (issue 3): simulated client queries answered per wall-clock second on
# ONE core, and the simulated-to-wall time ratio, for the standard scenario and for swarm
# options. Figures only: nothing here passes or fails on speed.
#   sim-speed.sh BINARY [SEEDS]
# The machine's load average is printed before and after: on a shared machine the pinned core
# is not ours alone, so each line also gives the CPU time the run used (user + system) and the
# queries per CPU second, which time spent waiting for the core does not dilute (sharing a
# physical core or its caches with other work still slows both figures).
set -euo pipefail
binary=$1
seeds=${2:-1..200}
pin=()
if command -v taskset > /dev/null; then pin=(taskset -c 0); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg 2> /dev/null || echo unknown; }

echo "switchyard sim speed, one core, seeds $seeds (target: 50000 queries per wall second)"
echo "load average before: $(load)"
for mode in standard swarm; do
  extra=()
  [[ $mode == swarm ]] && extra=(--swarm)
  TIMEFORMAT='%3U %3S'
  { time "${pin[@]}" "$binary" sim --seeds "$seeds" --no-fork "${extra[@]}" \
      > "$scratch/out" 2> "$scratch/err"; } 2> "$scratch/time" || {
    cat "$scratch/err" >&2
    exit 1
  }
  line=$(tail -n 1 "$scratch/out")
  read -r user_s system_s < "$scratch/time"
  queries=$(sed -n 's/.*sim_queries=\([0-9]*\).*/\1/p' <<< "$line")
  cpu=$(awk -v u="$user_s" -v s="$system_s" -v q="${queries:-0}" \
    'BEGIN { c = u + s; printf "cpu_s=%.3f queries_per_cpu_s=%d", c, (c > 0 ? q / c : 0) }')
  printf '%-9s %s %s\n' "$mode" "$line" "$cpu"
done
echo "load average after: $(load)"
