#!/usr/bin/env bash
# ctest weights.shipped_miou: the shipped weights (weights/farsee-paper-synthetic.safetensors) load
# and segment freshly generated street scenes (a seed never used in training) at a reduced size on
# the CPU with mIoU >= 0.60 through farsee-eval (weights/README.md: ~0.7+ on 100 held-out scenes).
# Usage: shipped_weights.sh TOOLS_DIR WORK_DIR WEIGHTS EXECUTOR
set -euo pipefail
tools=$1 work=$2 weights=$3 executor=$4
[[ -f "$weights" ]] || { echo "shipped_weights: '$weights' is missing"; exit 1; }
rm -rf "$work" && mkdir -p "$work"
"$tools/farsee-make-dataset" --out "$work/scenes" --val 12 --size 256x512 --seed 4242 --jobs 2
"$tools/farsee-eval" --data "$work/scenes" --split val --weights "$weights" --preset paper \
  --input-size 128x256 --executor "$executor" --json "$work/eval.json"
miou=$(grep -o '"miou": *[0-9.eE+-]*' "$work/eval.json" | grep -o '[0-9.eE+-]*$')
[[ -n "$miou" ]] || { echo "shipped_weights: no miou in $work/eval.json"; exit 1; }
if awk -v m="$miou" 'BEGIN { exit !(m >= 0.60) }'; then
  echo "shipped_weights: mIoU $miou >= 0.60"
  rm -rf "$work"
else
  echo "shipped_weights: mIoU $miou is below 0.60"
  exit 1
fi
