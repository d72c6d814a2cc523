#!/usr/bin/env bash
# Installs FarSee's build and test dependencies (Debian/Ubuntu). Idempotent: installs only what is
# missing, and runs apt-get update only when something is. Needs root (or sudo).
#   cmake, g++, make          the build
#   libgtest-dev              GoogleTest: the test suite
#   libbenchmark-dev          Google Benchmark: bench/ kernel microbenchmarks
#   nlohmann-json3-dev        JSON: safetensors headers, configs, benchmark output
#   libstb-dev                stb_image_write: our PNGs (stb_image decodes only without the next two)
#   libpng-dev                libpng: PNG decoding (untrusted input, DESIGN.md section 8.1)
#   libjpeg62-turbo-dev       libjpeg-turbo: JPEG decoding (Ubuntu: libjpeg-turbo8-dev)
#   liblz4-dev, libzstd-dev   farsee-pack's codecs (tools/data/pack.h; raw packs work without)
#   libcli11-dev              CLI11: the programs' flag parsing (tools/cli/flags.h; header-only)
#   clang, libclang-rt-dev    libFuzzer, ASan, UBSan for tools/scripts/fuzz.sh: only with
#                             --with-fuzzers or FARSEE_WITH_FUZZERS=1 (CI's fuzz stage)
#   libboost-context-dev      Boost.Context fibers: kernels/emu runs each CUDA thread as a fiber
#   libopenblas-dev           OpenBLAS sgemm: the reference executor's GEMM-shaped convolutions
#   python3, python3-numpy    tools/ scripts (fixtures, benchmarks); not needed at run time
#   python3-dev, pybind11-dev the Python module farsee (net/python/; optional at build time)
#   libav{format,codec,device}-dev, libswscale-dev, libavutil-dev
#                             FFmpeg's libraries: video in farsee-infer (tools/video/; optional at
#                             build time, required in CI by FARSEE_REQUIRE_VIDEO)
#   python3-pip               pip for the PyPI packages below (scikit-build-core; with --with-torch
#                             onnx, onnxruntime); cuobjdump where nvcc lacks it
# Optional: `--with-torch` (or FARSEE_WITH_TORCH=1, as CI sets) adds python3-torch: the Python tests
# (reference model, tools/pytorch/convert_weights.py, fixture freshness), regenerating fixtures,
# tools/pytorch/bench_torch.py; python3-pil regenerates the image fixtures
# (tools/scripts/make_image_fixtures.py); python3-pip then installs onnx and onnxruntime from PyPI
# into the same /usr/bin/python3 (tools/pytorch/export_onnx.py and its test against onnxruntime),
# with numpy pinned to Debian's: an unpinned install pulls numpy 2, with which Debian's torch fails
# ("RuntimeError: Numpy is not available"). Skipped when both import already.
# Order: apt packages first (one apt-get update, one install of everything missing), then the pip
# download, which needs python3-pip from the first step.
# The CUDA toolkit (nvcc) is not installed here: without it the CUDA targets are skipped and the
# emu and reference executors are still built and tested. Where nvcc exists but its cuobjdump does
# not (some toolkit installs omit it), cuobjdump and nvdisasm come from NVIDIA's PyPI wheels into
# ~/.cache/farsee/cuda-tools: the static SASS checks (HMMA present) need them; without them those
# checks are reported as skipped.
set -euo pipefail

packages=(cmake g++ make libgtest-dev libbenchmark-dev nlohmann-json3-dev libstb-dev libpng-dev
          libboost-context-dev libopenblas-dev python3 python3-numpy python3-dev pybind11-dev
          python3-pip liblz4-dev libzstd-dev libcli11-dev
          libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libavdevice-dev)
packages+=(openmpi-bin libopenmpi-dev)  # data-parallel farsee-train (optional at build time)
# libjpeg-turbo's development package is named differently on Debian and Ubuntu.
if apt-cache show libjpeg62-turbo-dev >/dev/null 2>&1; then
  packages+=(libjpeg62-turbo-dev)
else
  packages+=(libjpeg-turbo8-dev)
fi
# The libFuzzer harnesses (tools/scripts/fuzz.sh) need clang and its runtime: CI sets
# FARSEE_WITH_FUZZERS=1 (or pass --with-fuzzers); nothing else uses clang.
if [[ "${FARSEE_WITH_FUZZERS:-0}" == 1 || " $* " == *" --with-fuzzers "* ]]; then
  packages+=(clang libclang-rt-dev)
fi
with_torch="${FARSEE_WITH_TORCH:-0}"
if [[ "${1:-}" == "--with-torch" ]]; then with_torch=1; fi
if [[ "$with_torch" == 1 ]]; then packages+=(python3-torch python3-pil python3-pip); fi

cuda_tools="${HOME}/.cache/farsee/cuda-tools"
# True when nvcc exists without cuobjdump and the PyPI copy is not there yet.
needs_cuda_tools() {
  local nvcc_path
  nvcc_path=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
  [[ -n "$nvcc_path" ]] || return 1
  [[ -x "$(dirname "$nvcc_path")/cuobjdump" ]] && return 1
  ls "$cuda_tools"/nvidia/cu*/bin/cuobjdump >/dev/null 2>&1 && return 1
  return 0
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#packages[@]} packages present"
else
  echo "install_deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  start=$(date +%s)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  echo "install_deps: apt installed ${#missing[@]} package(s) in $(($(date +%s) - start)) s"
fi

if needs_cuda_tools; then
  echo "install_deps: cuobjdump missing from the CUDA toolkit; fetching it from PyPI into $cuda_tools"
  python3 -m pip install --quiet --disable-pip-version-check --target "$cuda_tools" \
      "nvidia-cuda-cuobjdump>=13,<14" "nvidia-cuda-nvdisasm>=13,<14" ||
    echo "install_deps: could not fetch cuobjdump: the static SASS checks will be skipped"
fi

# From PyPI (Debian has none of them), into Debian's python3 beside its pybind11 and torch:
#   scikit-build-core     `pip install .` of the module (the root pyproject.toml, install_test.sh)
#   onnx, onnxruntime     --with-torch: tools/pytorch/export_onnx.py and its test, at the versions
#                         the test's tolerance was measured with (tests/tools/pytorch/test_export_onnx.py)
# numpy held at Debian's: an unpinned install may pull numpy 2, which breaks Debian's torch
# ("Numpy is not available").
pypi=()
/usr/bin/python3 -c "import scikit_build_core" 2>/dev/null || pypi+=("scikit-build-core>=0.10")
if [[ "$with_torch" == 1 ]] && ! /usr/bin/python3 -c "import onnx, onnxruntime" 2>/dev/null; then
  pypi+=("onnx==1.23.2" "onnxruntime==1.32.0")
fi
if ((${#pypi[@]} == 0)); then
  echo "install_deps: PyPI packages present"
else
  pin=$(mktemp)
  trap 'rm -f "$pin"' EXIT
  /usr/bin/python3 -c 'import numpy; print("numpy==" + numpy.__version__)' >"$pin"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "install_deps: installing ${pypi[*]} from PyPI ($(cat "$pin") kept)"
  $SUDO /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
    -c "$pin" "${pypi[@]}"
  if [[ "$with_torch" == 1 ]]; then
    # Debian's torch must still work with the numpy it sees (the pin above).
    /usr/bin/python3 -c "import numpy, onnx, onnxruntime, torch; torch.from_numpy(numpy.zeros(1))"
  fi
fi
