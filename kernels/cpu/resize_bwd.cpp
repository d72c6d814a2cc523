// cpu executor, resize_bilinear_bwd: forwards to the reference implementation
// (kernels/reference/). Not on the net's paths (the loss fuses its upsample's backward): not worth
// a second implementation.
#include "kernels/resize_bwd.h"

namespace farsee::cpu_impl {

void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS) {
  reference::resize_bilinear_bwd(ctx, align_corners, dy, dx);
}

}  // namespace farsee::cpu_impl
