// cpu executor, pixel_unshuffle: forwards to the reference implementation (kernels/reference/).
// Measured not worth more: ~5 ms of a ~2.7 s paper 256x512 batch-2 training step.
#include "kernels/pixel_unshuffle.h"

namespace farsee::cpu_impl {

void pixel_unshuffle_fwd(FARSEE_PIXEL_UNSHUFFLE_FWD_ARGS) {
  reference::pixel_unshuffle_fwd(ctx, factor, x, y);
}

}  // namespace farsee::cpu_impl
