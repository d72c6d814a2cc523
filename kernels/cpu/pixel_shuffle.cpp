// cpu executor, pixel_shuffle: forwards to the reference implementation (kernels/reference/).
// Measured not worth more: ~5 ms of a ~2.7 s paper 256x512 batch-2 training step (inference
// fuses the shuffle into the conv's store).
#include "kernels/pixel_shuffle.h"

namespace farsee::cpu_impl {

void pixel_shuffle_fwd(FARSEE_PIXEL_SHUFFLE_FWD_ARGS) {
  reference::pixel_shuffle_fwd(ctx, factor, x, y);
}

}  // namespace farsee::cpu_impl
