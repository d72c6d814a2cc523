#!/usr/bin/env bash
# The CPU executor beside PyTorch eager (and the reference executor), back to back in one run with
# the same thread count (bench/RESULTS.md, "CPU executor"):
#   inference: paper and rtseg at 512x1024 and 256x512, batch 1, fp32 (5 timed runs after 1);
#   training:  paper 256x512, batch 2 (3 timed steps after 1).
# Peak RSS of every process from /usr/bin/time; the load average before and after each block.
# Usage: bash bench/net/cpu_executor_bench.sh [BUILD_DIR] [OUT_DIR]   (defaults: build, bench_cpu_out)
set -euo pipefail
build=${1:-build}
out=${2:-bench_cpu_out}
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
bench="$build/bin/farsee-bench"
torch_py=${TORCH_PYTHON:-/usr/bin/python3}
rss() { /usr/bin/time -f "peak RSS %M KiB" "$@"; }
load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)  ($(date -u +%H:%M:%S) UTC)"; }
echo "OMP_NUM_THREADS=$OMP_NUM_THREADS, $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for preset in paper rtseg; do
  load
  rss "$bench" --executor cpu --preset "$preset" --sizes 512x1024,256x512 --batches 1 \
    --precision fp32 --runs 5 --warmup 1 --json "$out/cpu_$preset.json"
  rss "$torch_py" tools/pytorch/bench_torch.py --device cpu --preset "$preset" --sizes 512x1024,256x512 \
    --batches 1 --runs 5 --warmup 1 --json "$out/torch_$preset.json"
  rss "$bench" --executor reference --preset "$preset" --sizes 512x1024,256x512 --batches 1 \
    --precision fp32 --runs 3 --warmup 1 --json "$out/reference_$preset.json"
done
load
rss "$bench" --train --executor cpu --preset paper --sizes 256x512 --batches 2 --runs 3 \
  --warmup 1 --json "$out/cpu_train.json"
rss "$torch_py" tools/pytorch/bench_torch.py --train --device cpu --preset paper --sizes 256x512 \
  --batches 2 --runs 3 --warmup 1 --json "$out/torch_train.json"
load
