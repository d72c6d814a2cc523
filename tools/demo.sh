#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, and segment the bundled sample
# images with farsee-infer (GPU if one is usable, else the CPU reference executor).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bash tools/build.sh
echo "demo: farsee-infer is not built yet in this revision; running the kernel benchmark listing"
"${FARSEE_BUILD_DIR:-build}"/bench/farsee-kernel-bench --benchmark_list_tests
