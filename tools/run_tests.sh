#!/usr/bin/env bash
# The whole test suite on a fresh machine: dependencies, build, ctest. GPU tests skip (with the
# reason) when no CUDA device is usable; emu and reference tests always run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bash tools/build.sh "$@"
ctest --test-dir "${FARSEE_BUILD_DIR:-build}" --output-on-failure -j "${FARSEE_JOBS:-$(nproc)}"
