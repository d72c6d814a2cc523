// Depthwise atrous 3x3 convolution with folded BN (per-channel scale and bias) and optional ReLU:
//   y[n,oy,ox,c] = act(scale[c] * sum_{r,s} x[n, oy*stride - d + r*d, ox*stride - d + s*d, c] *
//   w[c][r][s] + bias[c])
// padding = dilation (zeros), any stride and dilation. x and y may be channel slices of wider NHWC
// buffers (the F-ASPP branches read and write slices of the concat buffer). Activations fp32 or
// fp16 (same dtype for x and y), weights/scale/bias fp32, accumulation fp32.
#pragma once

#include "kernels/core/dispatch.h"
#include "kernels/core/tensor.h"

namespace farsee {

struct DepthwiseParams {
  int stride = 1;
  int dilation = 1;  // also the padding
  bool relu = true;
};

inline Shape4 depthwise_atrous_output_shape(const DepthwiseParams& p, Shape4 x) {
  // 3x3 with pad = dilation: out = (in - 1) / stride + 1
  return Shape4{x.n, (x.h - 1) / p.stride + 1, (x.w - 1) / p.stride + 1, x.c};
}

#define FARSEE_DEPTHWISE_ATROUS_FWD_ARGS                                                  \
  const Context &ctx, const DepthwiseParams &p, const TensorView &x, const float *weight, \
      const float *scale, const float *bias, const TensorView &y
namespace reference {
void depthwise_atrous_fwd(FARSEE_DEPTHWISE_ATROUS_FWD_ARGS);
}
namespace emu_impl {
void depthwise_atrous_fwd(FARSEE_DEPTHWISE_ATROUS_FWD_ARGS);
}
namespace cuda_impl {
void depthwise_atrous_fwd(FARSEE_DEPTHWISE_ATROUS_FWD_ARGS);
}

// weight: [C][3][3]; scale, bias: [C] (scale null = 1, bias null = 0).
inline void depthwise_atrous_fwd(FARSEE_DEPTHWISE_ATROUS_FWD_ARGS) {
  FARSEE_REQUIRE(p.stride >= 1 && p.dilation >= 1, "depthwise_atrous_fwd: stride "
                                                       << p.stride << " and dilation " << p.dilation
                                                       << " must be >= 1");
  FARSEE_REQUIRE(weight != nullptr, "depthwise_atrous_fwd: weight is null");
  require_dtype(y, "depthwise_atrous_fwd: y", x.dtype);
  require_shape(y, "depthwise_atrous_fwd: y", depthwise_atrous_output_shape(p, x.shape));
  FARSEE_DISPATCH(ctx, depthwise_atrous_fwd, ctx, p, x, weight, scale, bias, y);
}

}  // namespace farsee
