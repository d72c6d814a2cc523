#!/usr/bin/env bash
# ctest python.full_gradients: PyTorch's one-step gradients of the paper preset, every element
# (tools/pytorch/make_train_fixtures.py --full-gradients paper, ~45 MB, made here rather than
# stored), then TrainingParity.PaperPresetEveryGradientElement on them: every element within 1e-4
# of PyTorch's, relative to the tensor's max |g|.
# Usage: full_gradients.sh PYTHON TEST_BINARY WORK_DIR   (run from the repository root)
set -euo pipefail
python=$1 tests=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$python" tools/pytorch/make_train_fixtures.py --full-gradients paper --out "$work"
log="$work/test.log"
FARSEE_FULL_GRADIENTS_DIR="$work" "$tests" \
  --gtest_filter=TrainingParity.PaperPresetEveryGradientElement | tee "$log"
# A filter that matches nothing, or a skip, must not pass.
grep -q '^\[  PASSED  \] 1 test' "$log" || { echo "full_gradients: the test did not run and pass"; exit 1; }
rm -rf "$work"
