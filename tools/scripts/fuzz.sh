#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz with clang (ASan + UBSan; a separate configure of
# only the parser sources: FARSEE_BUILD_FUZZERS) and runs each for a fixed time, seeded with its
# committed corpus (DESIGN.md section 8.1). Any finding (crash, sanitizer report, leak, an input
# slower than 10 s, an allocation over 1 GB) stops that harness, prints the input's path and makes
# this script fail; keep such an input as a regression file (tests/fixtures/untrusted/) once fixed.
#   tools/scripts/fuzz.sh [SECONDS per harness, default 20] [HARNESS ...]   (default: all)
# Environment: FARSEE_FUZZ_BUILD (build folder, default build-fuzz), FARSEE_FUZZ_JOBS (parallel
# fuzzing processes per harness, default 1), CXX/CC (default clang++/clang).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
shift || true
build="${FARSEE_FUZZ_BUILD:-build-fuzz}"
start=$(date +%s)
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$build" -DFARSEE_BUILD_FUZZERS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="${CXX:-clang++}" -DCMAKE_C_COMPILER="${CC:-clang}" "${launcher[@]}" >/dev/null
cmake --build "$build" -j "${FARSEE_JOBS:-$(nproc)}"
echo "fuzz: built in $(($(date +%s) - start)) s"

harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  for f in "$build"/bin/fuzz_*.seeds; do harnesses+=("$(basename "$f" .seeds | sed 's/^fuzz_//')"); done
fi
failed=()
for h in "${harnesses[@]}"; do
  work="$build/corpus/$h"        # what libFuzzer adds (the committed seeds stay untouched)
  artifacts="$build/findings/$h/"
  mkdir -p "$work" "$artifacts"
  read -r -a seeds <"$build/bin/fuzz_$h.seeds"
  echo "fuzz: $h for $seconds s (seeds: ${seeds[*]})"
  if ! "$build/bin/fuzz_$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
      -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$artifacts" \
      ${FARSEE_FUZZ_JOBS:+-fork="$FARSEE_FUZZ_JOBS"} "$work" "${seeds[@]}" \
      >"$build/fuzz_$h.log" 2>&1; then
    failed+=("$h")
    tail -n 40 "$build/fuzz_$h.log"
    echo "fuzz: FINDING in $h: $(ls "$artifacts")"
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|cov: " "$build/fuzz_$h.log" | tail -n 3
done
echo "fuzz: total $(($(date +%s) - start)) s"
if ((${#failed[@]} > 0)); then
  echo "fuzz: findings in ${failed[*]} (inputs under $build/findings)"
  exit 1
fi
