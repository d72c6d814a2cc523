// Fused convolution: implicit GEMM (M = output pixels, N = output channels K, reduction = R*S*C),
// NHWC activations, weights pre-packed from KRSC, with the epilogue
//   v = scale[k] * acc + bias[k]  (+ residual)  (ReLU)
// stored plain, into a channel slice (concat for free), or pixel-shuffled by `shuffle_factor`
// (sub-pixel conv, PyTorch PixelShuffle channel order) with no separate shuffle pass.
// fp16 path: tensor cores (mma.m16n8k16, fp32 accumulate); fp32 path: SIMT, exact order-free fp32.
// See kernels/conv_bn_act.cu for the tiling.
//
// Usage: pack the weights once (pack_conv_weights), then call conv_bn_act_fwd per inference. The
// kernel configuration (block tile, split-K) is chosen per call by a fixed heuristic (plan_conv,
// documented in kernels/conv_bn_act.cpp); ConvOptions lets tests and benchmarks force one, and
// supplies the fp32 workspace split-K needs (without one, split-K is never chosen).
#pragma once

#include <cstddef>
#include <vector>

#include "kernels/core/conv_shape.h"
#include "kernels/core/dispatch.h"
#include "kernels/core/runtime.h"
#include "kernels/core/tensor.h"

namespace farsee {

// How pack_conv_weights laid the weights out; each executor reads one layout.
enum class ConvWeightLayout {
  KRSC,      // reference executor: [K][R][S][C], the storage dtype
  KRSCRows,  // fp16 kernels: [K][row_elements], row k = KRSC row k (r, s, c order) zero-padded
             //   to a multiple of 8 halves, so each row starts 16-byte aligned (cp.async)
  RSCK,      // fp32 kernels: [R*S*C][K], output channels contiguous (coalesced SIMT B tiles)
};

// Weights in the layout the kernels read, in the executor's memory space. Created once at load.
struct ConvWeights {
  rt::Buffer buffer;
  DType dtype = DType::F32;
  int K = 0, R = 0, S = 0, C = 0;  // logical shape (KRSC); C is per group
  int groups = 1;                  // conv_bn_act supports groups = 1 (depthwise: depthwise_atrous)
  ConvWeightLayout layout = ConvWeightLayout::KRSC;
  int row_elements = 0;  // elements per output channel (KRSC, KRSCRows); R*S*C rounded up for
                         // KRSCRows (e.g. the 3-channel 7x7 stem: 147 -> 152)
  Executor executor = Executor::Reference;  // whose memory `buffer` is in
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
  int shuffle_factor = 1;  // > 1: y = PixelShuffle(conv output, factor); 1, 2, 4 or 8
};

// Shape of y for input shape x.
Shape4 conv_output_shape(const ConvShape& conv, const ConvWeights& w, const ConvEpilogue& e,
                         Shape4 x);

// ---- kernel configuration ----
// Block tiles (output pixels x output channels) of the fp16 tensor-core and fp32 SIMT kernels.
enum class ConvTile { Auto, M128N128, M128N64, M64N64 };
const char* conv_tile_name(ConvTile t);

struct ConvOptions {
  ConvTile tile = ConvTile::Auto;  // Auto: the heuristic of plan_conv
  int split_k = 0;                 // 0: heuristic (only with a workspace); >= 1: forced
  void* workspace = nullptr;       // fp32 split-K partial sums, in the executor's memory
  size_t workspace_bytes = 0;
};

// What a kernel launch does: chosen on the host by plan_conv, executed by emu_impl / cuda_impl.
struct ConvPlan {
  ConvTile tile = ConvTile::M64N64;
  int split_k = 1;                  // reduction slices; > 1 sums fp32 partials from `workspace`
  bool gather_activations = false;  // fp16: element-wise im2col loads (C % 8 != 0, e.g. the
                                    // 3-channel stem, or x not 16-byte aligned) instead of
                                    // 16-byte cp.async of 8 channels
  float* workspace = nullptr;
};

// The configuration conv_bn_act_fwd runs for these arguments (throws if a forced one is invalid).
ConvPlan plan_conv(const ConvShape& conv, const ConvWeights& w, const TensorView& x,
                   const ConvOptions& options = {});
// Bytes of fp32 workspace the heuristic's split-K would use for input shape x (0: no split-K):
// allocate the maximum over a network's convs once and pass it in ConvOptions.
size_t conv_workspace_bytes(const ConvShape& conv, const ConvWeights& w, Shape4 x);

#define FARSEE_CONV_BN_ACT_FWD_ARGS                                                     \
  const Context &ctx, const ConvShape &conv, const TensorView &x, const ConvWeights &w, \
      const ConvEpilogue &epilogue, const TensorView &y
// The implementations get the validated arguments and the plan (the reference ignores it).
#define FARSEE_CONV_BN_ACT_IMPL_ARGS FARSEE_CONV_BN_ACT_FWD_ARGS, const ConvPlan& plan
namespace reference {
void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_IMPL_ARGS);
}
namespace emu_impl {
FARSEE_EMU_ENTRY void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_IMPL_ARGS);
}
namespace cuda_impl {
void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_IMPL_ARGS);
}

// Validates every argument (shapes, dtypes, slices, weight layout) and dispatches on ctx.executor.
void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS);
void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS, const ConvOptions& options);

}  // namespace farsee
