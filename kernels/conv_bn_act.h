// Fused convolution: implicit GEMM (M = output pixels, N = output channels K, reduction = R*S*C),
// NHWC activations, weights pre-packed from KRSC, with the epilogue
//   v = scale[k] * acc + bias[k]  (+ residual)  (ReLU)
// stored plain, into a channel slice (concat for free), or pixel-shuffled by `shuffle_factor`
// (sub-pixel conv, PyTorch PixelShuffle channel order) with no separate shuffle pass.
// fp16 path: tensor cores (mma.m16n8k16, fp32 accumulate); fp32 path: SIMT, exact order-free fp32.
// See kernels/conv_bn_act.cu for the tiling.
#pragma once

#include <vector>

#include "kernels/core/conv_shape.h"
#include "kernels/core/dispatch.h"
#include "kernels/core/runtime.h"
#include "kernels/core/tensor.h"

namespace farsee {

// Weights in the layout the kernels read, in the executor's memory space. Created once at load.
struct ConvWeights {
  rt::Buffer buffer;
  DType dtype = DType::F32;
  int K = 0, R = 0, S = 0, C = 0;  // logical shape (KRSC); C is per group
  int C_padded = 0;                // C rounded up for vector loads (the 3-channel stem pads to 8)
  int groups = 1;
};

// Packs host KRSC fp32 weights [K][R][S][C] for `ctx`'s executor, converting to `dtype`.
ConvWeights pack_conv_weights(const Context& ctx, const std::vector<float>& krsc, int K, int R,
                              int S, int C, DType dtype, int groups = 1);

struct ConvEpilogue {
  const float* scale = nullptr;  // [K] folded BN scale; null = 1
  const float* bias = nullptr;   // [K] folded BN bias or conv bias; null = 0
  TensorView residual;           // added before ReLU; data == nullptr: none. Shape of the
                                 // un-shuffled conv output; may be a channel slice.
  bool relu = false;
  int shuffle_factor = 1;        // > 1: y = PixelShuffle(conv output, factor)
};

// Shape of y for input shape x.
Shape4 conv_output_shape(const ConvShape& conv, const ConvWeights& w, const ConvEpilogue& e,
                         Shape4 x);

#define FARSEE_CONV_BN_ACT_FWD_ARGS                                                   \
  const Context &ctx, const ConvShape &conv, const TensorView &x, const ConvWeights &w, \
      const ConvEpilogue &epilogue, const TensorView &y
namespace reference { void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS); }
namespace emu_impl { void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS); }
namespace cuda_impl { void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS); }

// Validates every argument (shapes, dtypes, slices) and dispatches on ctx.executor.
void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS);

}  // namespace farsee
