// Pixel unshuffle (PyTorch nn.PixelUnshuffle channel order), NHWC:
//   y[n, h, w, c*r*r + i*r + j] = x[n, h*r + i, w*r + j, c]
// x: [N,H*r,W*r,C], y: [N,H,W,C*r*r], fp32 or fp16 (same dtype); either may be a channel slice.
// The exact inverse of pixel_shuffle_fwd (kernels/pixel_shuffle.h), hence each op is the other's
// backward: the training graph (net/train_graph.h) runs it as the backward of the pixel shuffle
// that follows the paper preset's up1 BN (shuffled, concatenated gradient -> the BN's layout).
#pragma once

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

inline Shape4 pixel_unshuffle_output_shape(int factor, Shape4 x) {
  return Shape4{x.n, x.h / factor, x.w / factor, x.c * factor * factor};
}

#define FARSEE_PIXEL_UNSHUFFLE_FWD_ARGS \
  const Context &ctx, int factor, const TensorView &x, const TensorView &y

FARSEE_DECLARE_OP(pixel_unshuffle_fwd, FARSEE_PIXEL_UNSHUFFLE_FWD_ARGS);

inline void pixel_unshuffle_fwd(FARSEE_PIXEL_UNSHUFFLE_FWD_ARGS) {
  FARSEE_REQUIRE(factor >= 1 && x.h() % factor == 0 && x.w() % factor == 0,
                 "pixel_unshuffle_fwd: x " << to_string(x.shape)
                                           << " is not divisible by the factor " << factor);
  FARSEE_REQUIRE(x.data != nullptr && y.data != nullptr, "pixel_unshuffle_fwd: null tensor");
  require_dtype(y, "pixel_unshuffle_fwd: y", x.dtype);
  require_shape(y, "pixel_unshuffle_fwd: y", pixel_unshuffle_output_shape(factor, x.shape));
  FARSEE_DISPATCH(ctx, pixel_unshuffle_fwd, ctx, factor, x, y);
}

}  // namespace farsee
