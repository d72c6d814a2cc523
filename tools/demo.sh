#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, generate synthetic street scenes
# (farsee-make-dataset --samples) and segment them with farsee-infer on the GPU if one is usable,
# else on the CPU reference executor. Outputs: build/demo/out/<name>_{labels,color,overlay}.png.
#
# No trained weights ship with FarSee (they cannot be downloaded here), so the demo uses
# deterministic random weights unless FARSEE_WEIGHTS names a safetensors file (for example one
# made by tools/convert_weights.py): the pipeline is real, the labels are meaningless without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bash tools/build.sh
build="${FARSEE_BUILD_DIR:-build}"
demo="$build/demo"
"$build/tools/farsee-make-dataset" --samples 3 --out "$demo/samples"
if [[ -n "${FARSEE_WEIGHTS:-}" ]]; then
  weights=(--weights "$FARSEE_WEIGHTS")
else
  weights=(--random-weights 1)
fi
"$build/tools/farsee-infer" "${weights[@]}" --overlay --out "$demo/out" "$demo/samples"
echo "demo: label maps, colour maps and overlays are in $demo/out/"
