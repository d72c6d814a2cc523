// cpu executor, pixel_shuffle: forwards to the reference implementation (kernels/reference/), which
// is a small share of the time here (per-op profile: bench/RESULTS.md, "CPU executor").
#include "kernels/pixel_shuffle.h"

namespace farsee::cpu_impl {

void pixel_shuffle_fwd(FARSEE_PIXEL_SHUFFLE_FWD_ARGS) {
  reference::pixel_shuffle_fwd(ctx, factor, x, y);
}

}  // namespace farsee::cpu_impl
