#!/usr/bin/env bash
# Longer fuzzing than `make test` does: each libFuzzer target built in BUILD_DIR/fuzz runs for
# SECONDS on a scratch copy of its checked-in corpus (fuzz/corpus/NAME), which is never
# modified. Crashing inputs are kept in BUILD_DIR/fuzz-artifacts/NAME/; the exit status is
# non-zero if any target crashed.
#
# usage: fuzz.sh BUILD_DIR SECONDS
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${1:?usage: fuzz.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz.sh BUILD_DIR SECONDS}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "error: SECONDS must be a whole number" >&2; exit 2; }
[[ -d $build ]] || { echo "error: no build directory $build" >&2; exit 2; }

targets=()
for name in codec_fuzz session_fuzz; do
  [[ -x $build/fuzz/$name ]] && targets+=("$name")
done
if ((${#targets[@]} == 0)); then
  echo "error: no fuzz targets in $build/fuzz (they are built with clang and" \
    "SWITCHYARD_SANITIZED=ON, from fuzz/*_fuzz.cc)" >&2
  exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
crashed=()
for name in "${targets[@]}"; do
  corpus=$scratch/$name
  artifacts=$build/fuzz-artifacts/$name
  mkdir -p "$corpus" "$artifacts"
  if [[ -d $repo/fuzz/corpus/$name ]]; then
    cp -r "$repo/fuzz/corpus/$name/." "$corpus/"
  fi
  before=$(find "$corpus" -type f | wc -l)
  echo "== $name: ${seconds}s, starting from $before corpus inputs"
  status=0
  "$build/fuzz/$name" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$scratch/$name.log" 2>&1 ||
    status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' \
    "$scratch/$name.log" || true
  echo "   corpus grew from $before to $(find "$corpus" -type f | wc -l) inputs (scratch copy)"
  if ((status != 0)); then
    crashed+=("$name")
    cp "$scratch/$name.log" "$artifacts/last-run.log"
    grep -E 'ERROR|SUMMARY|Test unit written' "$scratch/$name.log" | head -n 10
    echo "   FAILED (exit $status): inputs and log in $artifacts/"
  fi
done

if ((${#crashed[@]})); then
  echo "fuzz: crashes in ${crashed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} target(s) ran ${seconds}s each without a crash"
