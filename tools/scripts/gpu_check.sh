#!/usr/bin/env bash
# The one command for a GPU machine (DESIGN.md section 9; procedure in bench/RESULTS.md). Works
# offline: build dependencies come from the installed packages if present, else from the archive
# tools/scripts/gpu_deps.sh wrote into .gpu-deps/ on a networked machine. Steps, in order of value, each
# skipped with a note when it cannot finish before the deadline, results kept after every step:
#   build     the CUDA kernels for the local GPU only (native; --arch to override), the tests,
#             farsee-kernel-bench and farsee-bench (Ninja when available)
#   gpu-tests ctest over the GPU cases (not the `static` or `python` labels) with
#             FARSEE_REQUIRE_GPU=1: a GPU case that skips is a failure
#   memcheck  compute-sanitizer memcheck over the kernel and network GPU tests
#   kbench    farsee-kernel-bench: the @telling set (~50 forward cases beside cuDNN) and the
#             @training set (every backward / training kernel)
#   netbench  farsee-bench beside tools/pytorch/bench_torch.py (PyTorch+cuDNN, same shapes)
#   trainbench  farsee-bench --train beside bench_torch.py --train (512x1024, batch 8)
#   kbench-all  every kernel benchmark (all conv shapes of both presets, 512x1024 and 1024x2048)
#   ncu       Nsight Compute over one fp16 forward's conv kernels (when ncu is installed)
#   racecheck / synccheck  compute-sanitizer over the kernel GPU tests
# Usage: bash tools/scripts/gpu_check.sh [--deadline SECONDS] [--only check|bench] [--arch ARCH]
#   --deadline  wall-clock budget for all steps (default 540)
#   --only      check: build, gpu-tests and the sanitizers; bench: build and the benchmarks
# Output: when $OUT is set, at most 5 files go there: summary.md (ready for bench/RESULTS.md),
# logs.tar.gz (every step's log, refreshed after each step), kernels.json, farsee_bench.json,
# torch_bench.json; otherwise into gpu_check_out/. The last lines printed are the summary.
# Exit status: 0 when every step that ran passed, 1 otherwise, 2 for bad usage or no dependencies.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
root=$(pwd)
start=$(date +%s)

deadline=540
only=""
arch="${FARSEE_CUDA_ARCH:-native}"
while (($#)); do
  case "$1" in
    --deadline) deadline="${2:?--deadline needs SECONDS}"; shift 2 ;;
    --only) only="${2:?--only needs check or bench}"; shift 2 ;;
    --arch) arch="${2:?--arch needs an architecture, e.g. 90}"; shift 2 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$deadline" =~ ^[0-9]+$ ]] || { echo "gpu_check: --deadline '$deadline' is not a number of seconds" >&2; exit 2; }
[[ -z "$only" || "$only" == check || "$only" == bench ]] ||
  { echo "gpu_check: --only '$only': expected check or bench" >&2; exit 2; }

out="${OUT:-$root/gpu_check_out}"
mkdir -p "$out"
build="${FARSEE_BUILD_DIR:-$root/build-gpu}"
logs="$build/gpu_check_logs"
mkdir -p "$logs"
jobs=$(nproc)
export PATH="/usr/local/cuda/bin:$PATH"
status=0
results=()  # "step|status|seconds|note"

elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((deadline - $(elapsed))); }
save_logs() { tar -C "$build" -czf "$out/logs.tar.gz.tmp" gpu_check_logs && mv "$out/logs.tar.gz.tmp" "$out/logs.tar.gz"; }
record() { results+=("$1|$2|$3|$4"); save_logs; }
# want STEP ESTIMATE: true if STEP is selected by --only and ~ESTIMATE seconds remain.
want() {
  local step=$1 estimate=$2
  case "$only:$step" in
    check:kbench* | check:netbench | check:trainbench | bench:gpu-tests | bench:memcheck | bench:racecheck | bench:synccheck)
      return 1 ;;
  esac
  if [[ -n "${FARSEE_GPU_CHECK_DRY_RUN:-}" && "$step" != build ]]; then
    record "$step" skipped 0 "dry run: no GPU"
    return 1
  fi
  if (($(left) < estimate)); then
    record "$step" skipped 0 "needs ~${estimate} s, $(left) s left before the deadline"
    return 1
  fi
  return 0
}
# run_step STEP COMMAND...: runs with the time left as a hard limit; the log is $logs/STEP.log.
run_step() {
  local step=$1; shift
  local t0=$(date +%s) limit=$(($(left) > 5 ? $(left) : 5)) rc
  echo "=== $step (limit ${limit} s) ==="
  # The step runs in its own process group (job control on), so the watchdog can stop all of it.
  set -m
  ("$@") >"$logs/$step.log" 2>&1 &
  local pid=$!
  set +m
  (sleep "$limit"; kill -TERM -- -"$pid"; sleep 10; kill -KILL -- -"$pid") >/dev/null 2>&1 &
  local watchdog=$!
  wait "$pid"
  rc=$?
  pkill -P "$watchdog" 2>/dev/null
  kill "$watchdog" 2>/dev/null
  wait "$watchdog" 2>/dev/null
  local dt=$(($(date +%s) - t0))
  if ((rc == 0)); then
    record "$step" ok "$dt" ""
  elif ((dt >= limit)); then
    record "$step" FAILED "$dt" "stopped at the deadline"; status=1
  else
    record "$step" FAILED "$dt" "exit $rc (see $step.log)"; status=1
  fi
  tail -5 "$logs/$step.log"
  return $rc
}

# ---- machine ----
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if git rev-parse --short HEAD >/dev/null 2>&1; then
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
  else
    echo "commit: no git here; tree prepared at $(cat .gpu-deps/TREE 2>/dev/null || echo unknown)"
  fi
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1 || true)"
  echo "nvcc: $(nvcc --version 2>&1 | tail -1)"
  echo "host: $(nproc) cores, $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), g++ $(g++ -dumpfullversion 2>&1), $(cmake --version | head -1)"
  echo "python: $(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>/dev/null || echo 'no python3 with torch')"
} >"$logs/machine.txt"
cat "$logs/machine.txt"

# ---- dependencies: installed, else the .gpu-deps archive ----
have_installed_deps() {
  local h
  for h in boost/context/detail/fcontext.hpp gtest/gtest.h benchmark/benchmark.h nlohmann/json.hpp \
    stb/stb_image.h CLI/CLI.hpp; do
    [[ -f /usr/include/$h || -f /usr/local/include/$h ]] || return 1
  done
  [[ -f /usr/include/x86_64-linux-gnu/cblas.h || -f /usr/include/cblas.h ]]
}
cmake_deps=()
if have_installed_deps; then
  echo "dependencies: installed packages"
elif [[ -f .gpu-deps/farsee-gpu-deps.tar.gz ]]; then
  deps="$build/deps"
  if [[ ! -f "$deps/.unpacked" ]] || ! cmp -s .gpu-deps/COMMIT "$deps/.unpacked"; then
    rm -rf "$deps" && mkdir -p "$deps" && tar -C "$deps" -xzf .gpu-deps/farsee-gpu-deps.tar.gz &&
      cp .gpu-deps/COMMIT "$deps/.unpacked" || { echo "gpu_check: cannot unpack .gpu-deps" >&2; exit 2; }
  fi
  if git rev-parse HEAD >/dev/null 2>&1 && [[ "$(cat .gpu-deps/COMMIT)" != "$(git rev-parse HEAD)" ]]; then
    echo "note: .gpu-deps was made for commit $(cut -c1-12 .gpu-deps/COMMIT); fine unless the dependencies changed since"
  fi
  multi="$deps/usr/lib/x86_64-linux-gnu"
  cmake_deps=(-DCMAKE_PREFIX_PATH="$deps/usr" -DCMAKE_LIBRARY_PATH="$multi"
              -DCMAKE_INCLUDE_PATH="$deps/usr/include")
  export CPATH="$deps/usr/include:$deps/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$multi${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$multi:$multi/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "dependencies: .gpu-deps archive ($(wc -l <.gpu-deps/PACKAGES) packages) unpacked in $deps"
else
  echo "gpu_check: the build dependencies are neither installed nor carried. On a networked" \
    "Debian/Ubuntu machine run 'bash tools/scripts/gpu_deps.sh' and bring .gpu-deps/ along" \
    "(see bench/RESULTS.md)." >&2
  exit 2
fi
# cuDNN for the kernel benchmarks' baseline: the toolkit's, else the wheel PyTorch brings.
cudnn_root=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
[[ -n "$cudnn_root" ]] && export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---- build ----
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
targets=(farsee-kernel-bench farsee-bench)
[[ "$only" != bench ]] && targets=(all)
build_cmd() {
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" -DFARSEE_REQUIRE_CUDA=ON \
    ${cudnn_root:+-DFARSEE_CUDNN_ROOT="$cudnn_root"} "${cmake_deps[@]}" &&
    cmake --build "$build" -j "$jobs" --target "${targets[@]}"
}
if ! run_step build build_cmd; then
  echo "gpu_check: the build failed; nothing else can run"
  tail -40 "$logs/build.log"
fi
built=$([[ ${results[-1]} == build\|ok* ]] && echo 1 || echo 0)

tests_bin="$build/tests"
gpu_cases='[Cc]uda|GPU|Gpu'
gtest_gpu='*cuda*:*Cuda*:*GPU*:*Gpu*'
export FARSEE_REQUIRE_GPU=1

if ((built)) && [[ -n "${FARSEE_GPU_CHECK_DRY_RUN:-}" ]]; then
  # No GPU: at least load the test list the GPU step would run (catches ctest/CMake breakage).
  list_gpu_tests() {
    ctest --test-dir "$build" -N -R "$gpu_cases" -LE 'static|python' | tee /dev/stderr |
      grep -qE 'Total Tests: [1-9]'
  }
  run_step list-gpu-tests list_gpu_tests
fi
if ((built)) && want gpu-tests 60; then
  run_step gpu-tests ctest --test-dir "$build" -R "$gpu_cases" -LE 'static|python' -j "$jobs" \
    --timeout 120 --output-on-failure
fi

sanitize() {  # sanitize TOOL BINARY...
  local tool=$1 bin rc=0; shift
  for bin in "$@"; do
    [[ -x "$bin" ]] || { echo "missing $bin"; rc=1; continue; }
    echo "--- compute-sanitizer --tool $tool $(basename "$bin")"
    # FARSEE_SYNC_LAUNCHES=1: every launch outside capture synchronised and checked, so an
    # asynchronous error names its kernel, file and line (kernels/core/launch.h).
    FARSEE_SYNC_LAUNCHES=1 compute-sanitizer --tool "$tool" --error-exitcode 99 "$bin" \
      --gtest_filter="$gtest_gpu" ||
      rc=1
  done
  return $rc
}
if ((built)) && want memcheck 90; then
  run_step memcheck sanitize memcheck "$tests_bin/farsee_kernels_tests" "$tests_bin/farsee_net_tests" \
    "$tests_bin/farsee_tools_tests"
fi

kbench() {  # kbench FILTER JSON
  "$build/bench/farsee-kernel-bench" --benchmark_filter="$1" --benchmark_min_time=0.05 \
    --benchmark_out="$2" --benchmark_out_format=json --benchmark_format=console
}
if ((built)) && want kbench 100; then
  run_step kbench kbench @telling+training "$out/kernels.json"
fi

netbench() {
  local rc=0
  # Batches 1 and 8 at the three sizes, fp32 and fp16; PyTorch also in tf32 (its default).
  "$build/bin/farsee-bench" --batches 1,8 --json "$out/farsee_bench.json" || rc=1
  # Where the time goes: the slowest steps of one eager fp16 pass at 512x1024, batch 1.
  "$build/bin/farsee-bench" --sizes 512x1024 --batches 1 --precision fp16 --runs 3 --warmup 1 \
    --profile || rc=1
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    PYTHONUNBUFFERED=1 python3 tools/pytorch/bench_torch.py --batches 1,8 --json "$out/torch_bench.json" ||
      rc=1
  else
    echo "PyTorch with CUDA not available here: no baseline run"; rc=1
  fi
  return $rc
}
if ((built)) && want netbench 150; then
  run_step netbench netbench
fi

# A whole training step (forward, loss, backward, SGD; fp32 and fp16 mixed precision; CUDA-graph
# replay) beside PyTorch's (eager fp32 and channels_last AMP), 512x1024 batch 8. Logs only (the
# JSON files are capped at 5).
trainbench() {
  local rc=0
  "$build/bin/farsee-bench" --train --sizes 512x1024 --batches 8 --runs 10 --warmup 3 || rc=1
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    PYTHONUNBUFFERED=1 python3 tools/pytorch/bench_torch.py --train --sizes 512x1024 --batches 8 \
      --runs 10 --warmup 3 || rc=1
  fi
  return $rc
}
if ((built)) && want trainbench 90; then
  run_step trainbench trainbench
fi

if ((built)) && want kbench-all 150; then
  run_step kbench-all kbench '.' "$out/kernels_all.json"
  # Keep to 5 files in $OUT: the full set replaces the @telling JSON (it contains those cases).
  [[ -s "$out/kernels_all.json" ]] && mv "$out/kernels_all.json" "$out/kernels.json"
fi

# One Nsight Compute pass over the conv kernels of one fp16 forward (512x1024, batch 1), where ncu
# is installed: achieved DRAM and tensor throughput per kernel, to set beside the emu counters
# (bench/RESULTS.md). A log only (the JSON files are capped at 5).
ncu_conv() {
  ncu --kernel-name regex:conv --launch-count 40 --section SpeedOfLight \
    --section MemoryWorkloadAnalysis --section LaunchStats --csv --page details \
    "$build/bin/farsee-bench" --sizes 512x1024 --batches 1 --precision fp16 --runs 1 --warmup 0 \
    --no-cuda-graph
}
if ((built)) && command -v ncu >/dev/null && want ncu 120; then
  run_step ncu ncu_conv
elif ((built)) && ! command -v ncu >/dev/null; then
  record ncu skipped 0 "ncu not on this machine"
fi

if ((built)) && want racecheck 90; then
  run_step racecheck sanitize racecheck "$tests_bin/farsee_kernels_tests"
fi
if ((built)) && want synccheck 60; then
  run_step synccheck sanitize synccheck "$tests_bin/farsee_kernels_tests"
fi

# ---- summary ----
summary() {
  echo "## $(date -u +%Y-%m-%d) $(sed -n 's/^gpu: //p' "$logs/machine.txt" | cut -d, -f1)"
  echo
  sed 's/^/- /' "$logs/machine.txt"
  echo "- command: \`bash tools/scripts/gpu_check.sh --deadline $deadline${only:+ --only $only}\` (total $(elapsed) s)"
  echo
  echo "| step | result | seconds | note |"
  echo "| --- | --- | --- | --- |"
  local r
  for r in "${results[@]}"; do echo "| ${r//|/ | } |"; done
  echo
  if [[ -f "$logs/gpu-tests.log" ]]; then
    echo "GPU tests: $(grep -E 'tests passed|tests failed' "$logs/gpu-tests.log" | tail -1)"
    grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|Not Run|SEGFAULT|Subprocess aborted)' "$logs/gpu-tests.log" | head -20
    echo
  fi
  local tool
  for tool in memcheck racecheck synccheck; do
    [[ -f "$logs/$tool.log" ]] || continue
    echo "$tool: $(grep -hE '(ERROR|RACECHECK) SUMMARY' "$logs/$tool.log" | sort | uniq -c | paste -sd';')"
  done
  echo
  if [[ -f "$logs/kbench.log" || -f "$logs/kbench-all.log" ]]; then
    local klog="$logs/kbench.log"
    [[ -f "$logs/kbench-all.log" ]] && klog="$logs/kbench-all.log"
    echo "Kernel benchmarks (median of the timed iterations; CUDA events; $(basename "$klog" .log)):"
    echo '```'
    grep -E '^(Benchmark|conv|depthwise|max_pool|pixel|resize|[a-z_]+/fp)' "$klog" |
      sed 's#/manual_time##' | cut -c1-170 | head -300
    echo '```'
  fi
  if [[ -f "$logs/trainbench.log" ]]; then
    echo "Training step (farsee-bench --train, then bench_torch.py --train, same call):"
    echo '```'
    grep -vE '^\s*$' "$logs/trainbench.log" | tail -20
    echo '```'
  fi
  if [[ -f "$logs/netbench.log" ]]; then
    echo "Network (farsee-bench, then tools/pytorch/bench_torch.py, same call):"
    echo '```'
    grep -vE '^\s*$' "$logs/netbench.log" | tail -60
    echo '```'
  fi
}
summary >"$out/summary.md.tmp" && mv "$out/summary.md.tmp" "$out/summary.md"
save_logs
echo
echo "================ gpu_check summary (kernel benchmark lines: summary.md) ================"
# Everything but the kernel benchmark block, which can be hundreds of lines.
awk '/^Kernel benchmarks/ {skip = 1} skip && /^```$/ {fence++; if (fence == 2) {skip = 0; next}}
     !skip' "$out/summary.md" | head -c 11000 | tail -100
exit $status
