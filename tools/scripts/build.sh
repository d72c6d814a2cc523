#!/usr/bin/env bash
# Configures and builds FarSee into ./build (or $FARSEE_BUILD_DIR). nvcc is looked for on PATH and
# in /usr/local/cuda/bin; without it the CUDA targets are off (emu and reference still build).
# Extra arguments go to cmake's configure step (e.g. -DCMAKE_CUDA_ARCHITECTURES=90).
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${FARSEE_BUILD_DIR:-build}"
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
jobs="${FARSEE_JOBS:-$(nproc)}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build_dir" -j "$jobs"
