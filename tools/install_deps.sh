#!/usr/bin/env bash
# Installs FarSee's build and test dependencies (Debian/Ubuntu). Idempotent: installs only what is
# missing, and runs apt-get update only when something is. Needs root (or sudo).
#   cmake, g++, make          the build
#   libgtest-dev              GoogleTest: the test suite
#   libbenchmark-dev          Google Benchmark: bench/ kernel microbenchmarks
#   nlohmann-json3-dev        JSON: safetensors headers, configs, benchmark output
#   libstb-dev                stb_image / stb_image_write: PNG/JPG in and out of farsee-infer
#   libboost-context-dev      Boost.Context fibers: kernels/emu runs each CUDA thread as a fiber
#   libopenblas-dev           OpenBLAS sgemm: the reference executor's GEMM-shaped convolutions
#   python3, python3-numpy    tools/ scripts (fixtures, benchmarks); not needed at run time
# Optional: `--with-torch` adds python3-torch (regenerating fixtures, tools/bench_torch.py).
# The CUDA toolkit (nvcc) is not installed here: without it the CUDA targets are skipped and the
# emu and reference executors are still built and tested. Where nvcc exists but its cuobjdump does
# not (some toolkit installs omit it), cuobjdump and nvdisasm come from NVIDIA's PyPI wheels into
# ~/.cache/farsee/cuda-tools: the static SASS checks (HMMA present) need them; without them those
# checks are reported as skipped.
set -euo pipefail

packages=(cmake g++ make libgtest-dev libbenchmark-dev nlohmann-json3-dev libstb-dev
          libboost-context-dev libopenblas-dev python3 python3-numpy)
if [[ "${1:-}" == "--with-torch" ]]; then packages+=(python3-torch); fi

install_cuda_tools() {
  local nvcc_path tools="${HOME}/.cache/farsee/cuda-tools"
  nvcc_path=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
  [[ -n "$nvcc_path" ]] || return 0
  [[ -x "$(dirname "$nvcc_path")/cuobjdump" ]] && return 0
  ls "$tools"/nvidia/cu*/bin/cuobjdump >/dev/null 2>&1 && return 0
  echo "install_deps: cuobjdump missing from the CUDA toolkit; fetching it from PyPI into $tools"
  python3 -m pip install --quiet --disable-pip-version-check --target "$tools" \
      "nvidia-cuda-cuobjdump>=13,<14" "nvidia-cuda-nvdisasm>=13,<14" ||
    echo "install_deps: could not fetch cuobjdump: the static SASS checks will be skipped"
}
install_cuda_tools

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
