#!/usr/bin/env bash
# Runs a libFuzzer target for a few seconds on a scratch copy of its corpus.
# usage: fuzz-once.sh FUZZER CORPUS_DIR SECONDS
set -euo pipefail
fuzzer=$1 corpus=$2 seconds=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$corpus"/. "$scratch"/ 2>/dev/null || true
# Crash inputs land in the working directory (ctest runs this in the build tree), so they
# outlive the scratch corpus.
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
  -artifact_prefix="$PWD/" "$scratch"
