// Pixel shuffle (PyTorch nn.PixelShuffle order), NHWC:
//   y[n, h*r + i, w*r + j, c] = x[n, h, w, c*r*r + i*r + j]
// x: [N,H,W,C*r*r], y: [N,H*r,W*r,C], fp32 or fp16 (same dtype); either may be a channel slice.
// In the net the shuffle is fused into the producing conv's store; this standalone op is the
// reference point for that store mode and the fallback.
#pragma once

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

inline Shape4 pixel_shuffle_output_shape(int factor, Shape4 x) {
  return Shape4{x.n, x.h * factor, x.w * factor, x.c / (factor * factor)};
}

#define FARSEE_PIXEL_SHUFFLE_FWD_ARGS \
  const Context &ctx, int factor, const TensorView &x, const TensorView &y
FARSEE_DECLARE_OP(pixel_shuffle_fwd, FARSEE_PIXEL_SHUFFLE_FWD_ARGS);

inline void pixel_shuffle_fwd(FARSEE_PIXEL_SHUFFLE_FWD_ARGS) {
  FARSEE_REQUIRE(factor >= 1 && x.c() % (factor * factor) == 0,
                 "pixel_shuffle_fwd: input channels "
                     << x.c() << " not divisible by factor^2 = " << factor * factor);
  require_dtype(y, "pixel_shuffle_fwd: y", x.dtype);
  require_shape(y, "pixel_shuffle_fwd: y", pixel_shuffle_output_shape(factor, x.shape));
  FARSEE_DISPATCH(ctx, pixel_shuffle_fwd, ctx, factor, x, y);
}

}  // namespace farsee
