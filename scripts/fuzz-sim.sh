#!/usr/bin/env bash
# Long simulator campaigns: `make fuzz-sim SEEDS=A..B` runs `switchyard sim --seeds A..B --swarm`
# split into one shard per core, then prints every violation (each with the command that
# reproduces it) and one summary line. Without SEEDS a fresh random range of 10,000 seeds is
# drawn, so repeated campaigns explore new ground; the range is printed first.
#   fuzz-sim.sh BINARY [A..B] [extra sim options, e.g. --mutant NAME]
set -euo pipefail
binary=$1
seeds=${2:-}
shift $(( $# >= 2 ? 2 : 1 ))
if [[ -z $seeds ]]; then
  start=$(( (RANDOM << 15 | RANDOM) * 1000 + 1 ))
  seeds="$start..$(( start + 9999 ))"
fi
jobs=${FUZZ_SIM_JOBS:-$(nproc)}
echo "fuzz-sim: seeds $seeds in $jobs shards"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pids=()
for (( i = 1; i <= jobs; i++ )); do
  "$binary" sim --seeds "$seeds" --swarm --shard "$i/$jobs" "$@" > "$work/shard$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
grep -h '^violation' "$work"/shard*.log || true
# Sum the shards' summary lines: seeds=N failed=F sim_queries=Q wall_s=W ...
grep -h '^seeds=' "$work"/shard*.log | awk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] += kv[2]; if (kv[1] == "wall_s" && kv[2] > wall) wall = kv[2] } }
  END { printf "seeds=%d failed=%d sim_queries=%d wall_s=%.3f queries_per_wall_s=%.0f shards=%d\n",
        v["seeds"], v["failed"], v["sim_queries"], wall, wall > 0 ? v["sim_queries"] / wall : 0, NR }'
exit $status
