// cpu executor, pixel_unshuffle: forwards to the reference implementation (kernels/reference/),
// which is a small share of the time here (per-op profile: bench/RESULTS.md, "CPU executor").
#include "kernels/pixel_unshuffle.h"

namespace farsee::cpu_impl {

void pixel_unshuffle_fwd(FARSEE_PIXEL_UNSHUFFLE_FWD_ARGS) {
  reference::pixel_unshuffle_fwd(ctx, factor, x, y);
}

}  // namespace farsee::cpu_impl
