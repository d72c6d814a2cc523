#!/usr/bin/env bash
# One command for a GPU machine (DESIGN.md section 9): build for the local GPU, run the whole suite
# with the GPU tests, run compute-sanitizer memcheck, racecheck and synccheck over the GPU tests,
# run the kernel benchmarks and (where they exist) the network benchmark beside PyTorch, and print
# a summary ready to paste into bench/RESULTS.md. Results also go to $OUT (default gpu_check_out/).
# Usage: bash tools/gpu_check.sh [--quick]   (--quick: sanitizers on the first test binary only)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
build="${FARSEE_BUILD_DIR:-build-gpu}"
quick="${1:-}"
export PATH="/usr/local/cuda/bin:$PATH"
status=0
step() { echo; echo "=== $* ==="; }
fail() { echo "FAILED: $*"; status=1; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
nvcc --version | tail -1 | tee "$out/nvcc.txt"
git rev-parse --short HEAD 2>/dev/null | tee "$out/commit.txt"

step "build (native architecture)"
if ! FARSEE_BUILD_DIR="$build" bash tools/build.sh -DCMAKE_CUDA_ARCHITECTURES=native \
    -DFARSEE_REQUIRE_CUDA=ON >"$out/build.log" 2>&1; then
  tail -50 "$out/build.log"
  fail "build"
  exit 1
fi
tail -3 "$out/build.log"

step "ctest (GPU tests enabled)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" >"$out/ctest.log" 2>&1 || fail "ctest"
grep -E "tests passed|tests failed|Not Run|Failed|\*\*\*" "$out/ctest.log" | tail -30
skipped_gpu=$(grep -c "cuda.*Skipped\|Skipped.*cuda" "$out/ctest.log" || true)
echo "GPU test cases reported as skipped: $skipped_gpu (expected 0 on a GPU machine)"

step "compute-sanitizer over the GPU test cases"
: >"$out/sanitizer.log"
bins=("$build"/tests/farsee_*_tests)
[[ "$quick" == "--quick" ]] && bins=("${bins[0]}")
for bin in "${bins[@]}"; do
  [[ -x "$bin" ]] || continue
  for tool in memcheck racecheck synccheck; do
    echo "--- $tool $(basename "$bin")" | tee -a "$out/sanitizer.log"
    if ! compute-sanitizer --tool "$tool" --error-exitcode 99 "$bin" --gtest_filter='*cuda*:*Cuda*:*Gpu*' \
        >>"$out/sanitizer.log" 2>&1; then
      fail "compute-sanitizer $tool $(basename "$bin")"
    fi
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/sanitizer.log" | tail -1
  done
done

step "kernel benchmarks"
if [[ -x "$build/bench/farsee-kernel-bench" ]]; then
  "$build/bench/farsee-kernel-bench" --benchmark_min_time=0.2 --benchmark_format=console \
      --benchmark_out="$out/kernels.json" --benchmark_out_format=json | tee "$out/kernels.txt" ||
      fail "kernel benchmarks"
fi

step "network benchmark: FarSee vs PyTorch"
if [[ -x "$build/tools/farsee-bench" ]]; then
  "$build/tools/farsee-bench" --json "$out/farsee_bench.json" | tee "$out/farsee_bench.txt" ||
      fail "farsee-bench"
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    python3 tools/bench_torch.py --json "$out/torch_bench.json" | tee "$out/torch_bench.txt" ||
        fail "bench_torch.py"
  else
    echo "PyTorch with CUDA not available here: no baseline run"
  fi
fi

step "summary for bench/RESULTS.md"
{
  echo "## $(date -u +%Y-%m-%d) $(cut -d, -f1 "$out/gpu.txt")"
  echo
  echo "- GPU / driver / memory: $(cat "$out/gpu.txt")"
  echo "- CUDA: $(cat "$out/nvcc.txt"); commit $(cat "$out/commit.txt")"
  echo "- Command: \`bash tools/gpu_check.sh\`"
  echo "- ctest: $(grep -E 'tests passed' "$out/ctest.log" | tail -1)"
  echo "- compute-sanitizer: $(grep -cE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' "$out/sanitizer.log") clean runs, status $status"
  echo
  if [[ -f "$out/kernels.txt" ]]; then
    echo '```'
    grep -E "^(BM_|---|Benchmark)" "$out/kernels.txt"
    echo '```'
  fi
  [[ -f "$out/farsee_bench.txt" ]] && { echo '```'; cat "$out/farsee_bench.txt"; echo '```'; }
  [[ -f "$out/torch_bench.txt" ]] && { echo '```'; cat "$out/torch_bench.txt"; echo '```'; }
} | tee "$out/summary.md"
exit $status
