// Max pooling, NHWC, PyTorch nn.MaxPool2d semantics (implicit -inf padding, floor mode):
//   out = (in + 2*pad - kernel) / stride + 1
// The net uses 3x3, stride 2, pad 1 after the stem. fp32 or fp16 (same dtype); channel slices ok.
//
// Backward (max_pool_bwd): dx = the gradient of the forward, written (not accumulated). Each dy
// element goes to the input its window chose: PyTorch's scan order (row-major over the window,
// first strictly greater wins, a NaN replaces the running maximum; a window of -inf only picks its
// first in-image input). Gather form: each dx element sums, in window order, over the windows that
// chose it. x, dy, dx: one dtype (fp32 or fp16), channel slices ok; sums in fp32 (reference:
// double).
#pragma once

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

struct MaxPoolParams {
  int kernel = 3;
  int stride = 2;
  int pad = 1;
};

inline Shape4 max_pool_output_shape(const MaxPoolParams& p, Shape4 x) {
  return Shape4{x.n, (x.h + 2 * p.pad - p.kernel) / p.stride + 1,
                (x.w + 2 * p.pad - p.kernel) / p.stride + 1, x.c};
}

#define FARSEE_MAX_POOL_FWD_ARGS \
  const Context &ctx, const MaxPoolParams &p, const TensorView &x, const TensorView &y
FARSEE_DECLARE_OP(max_pool_fwd, FARSEE_MAX_POOL_FWD_ARGS);

inline void max_pool_fwd(FARSEE_MAX_POOL_FWD_ARGS) {
  FARSEE_REQUIRE(p.kernel >= 1 && p.stride >= 1 && p.pad >= 0 && 2 * p.pad <= p.kernel,
                 "max_pool_fwd: kernel " << p.kernel << ", stride " << p.stride << ", pad " << p.pad
                                         << " invalid (PyTorch requires pad <= kernel/2)");
  require_dtype(y, "max_pool_fwd: y", x.dtype);
  require_shape(y, "max_pool_fwd: y", max_pool_output_shape(p, x.shape));
  FARSEE_DISPATCH(ctx, max_pool_fwd, ctx, p, x, y);
}

#define FARSEE_MAX_POOL_BWD_ARGS                                                         \
  const Context &ctx, const MaxPoolParams &p, const TensorView &x, const TensorView &dy, \
      const TensorView &dx
FARSEE_DECLARE_OP(max_pool_bwd, FARSEE_MAX_POOL_BWD_ARGS);

// x: the forward's input; dy: gradient of its output; dx: written, x's shape.
inline void max_pool_bwd(FARSEE_MAX_POOL_BWD_ARGS) {
  FARSEE_REQUIRE(p.kernel >= 1 && p.stride >= 1 && p.pad >= 0 && 2 * p.pad <= p.kernel,
                 "max_pool_bwd: kernel " << p.kernel << ", stride " << p.stride << ", pad " << p.pad
                                         << " invalid (PyTorch requires pad <= kernel/2)");
  FARSEE_REQUIRE(x.data != nullptr && dy.data != nullptr && dx.data != nullptr,
                 "max_pool_bwd: null tensor");
  require_dtype(dy, "max_pool_bwd: dy", x.dtype);
  require_dtype(dx, "max_pool_bwd: dx", x.dtype);
  require_shape(dy, "max_pool_bwd: dy", max_pool_output_shape(p, x.shape));
  require_shape(dx, "max_pool_bwd: dx", x.shape);
  FARSEE_DISPATCH(ctx, max_pool_bwd, ctx, p, x, dy, dx);
}

}  // namespace farsee
