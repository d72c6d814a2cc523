#!/usr/bin/env bash
# Data-parallel farsee-train on this machine (DESIGN.md section 10.2): images/s of 1 process with
# batch B and of `mpirun -np 2` with batch B per rank (global 2B), one OpenMP thread per process,
# cpu executor; the 2-rank run also prints the time of each kind of collective per step (the
# gradient all-reduce, the synchronised BN's sums, the loss normaliser).
# usage: bench/net/data_parallel_bench.sh [BUILD_DIR] [PRESET] [HxW] [B] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
preset=${2:-paper}
size=${3:-128x256}
batch=${4:-2}
steps=${5:-6}
bin=$build/bin/farsee-train
data=tests/fixtures/train/cityscapes
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--data "$data" --preset "$preset" --input-size "$size" --batch "$batch" --steps "$steps"
        --executor cpu --workers 1 --print-every 1000 --lr 0.001)
# Mean images/s over steps 2.. (the first step pays one-time costs), from the JSON-lines log.
rate() {
  grep -o '"seconds":[0-9.e+-]*' "$1" | tail -n +2 | cut -d: -f2 |
    awk -v n="$2" '{s += $1; k++} END {printf "%.2f images/s (%.1f ms/step)", n * k / s, 1e3 * s / k}'
}
export OMP_NUM_THREADS=1
"$bin" "${common[@]}" --log "$tmp/one.jsonl" > /dev/null
echo "1 process, batch $batch:            $(rate "$tmp/one.jsonl" "$batch")"
mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1 -np 2 "$bin" "${common[@]}" \
  --log "$tmp/two.jsonl" > "$tmp/two.out"
echo "2 ranks x batch $batch (global $((2 * batch))): $(rate "$tmp/two.jsonl" $((2 * batch)))"
grep "collectives:" "$tmp/two.out"
# The same with per-rank BN statistics: the synchronised BN's share (host double math + waits).
mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1 -np 2 "$bin" "${common[@]}" \
  --bn local --log "$tmp/local.jsonl" > "$tmp/local.out"
echo "2 ranks x batch $batch, --bn local:   $(rate "$tmp/local.jsonl" $((2 * batch)))"
grep "collectives:" "$tmp/local.out"
