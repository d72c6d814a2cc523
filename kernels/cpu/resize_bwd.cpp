// cpu executor, resize_bwd: forwards to the reference implementation (kernels/reference/), which is
// a small share of the time here (per-op profile: bench/RESULTS.md, "CPU executor").
#include "kernels/resize_bwd.h"

namespace farsee::cpu_impl {

void resize_bilinear_bwd(FARSEE_RESIZE_BILINEAR_BWD_ARGS) {
  reference::resize_bilinear_bwd(ctx, align_corners, dy, dx);
}

}  // namespace farsee::cpu_impl
