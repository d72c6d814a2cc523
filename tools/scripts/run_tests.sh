#!/usr/bin/env bash
# The whole test suite on a fresh machine: dependencies, build, ctest. GPU tests skip (with the
# reason) when no CUDA device is usable; emu and reference tests always run.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/scripts/install_deps.sh
bash tools/scripts/build.sh "$@"
build="${FARSEE_BUILD_DIR:-build}"
status=0
ctest --test-dir "$build" --output-on-failure -j "${FARSEE_JOBS:-$(nproc)}" || status=$?
# ctest lists skipped tests without their reason; the GPU tests' reason is in their output.
log="$build/Testing/Temporary/LastTest.log"
reason=$(grep -m1 -o 'GPU test skipped: .*' "$log" 2>/dev/null || true)
if [[ -n "$reason" ]]; then
  echo "The skipped tests are the GPU cases. $reason"
fi
exit $status
