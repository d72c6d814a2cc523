// Fused convolution: implicit GEMM (M = output pixels, N = output channels K, reduction = R*S*C),
// NHWC activations, weights pre-packed from KRSC, with the epilogue
//   v = scale[k] * acc + bias[k]  (+ residual)  (ReLU)
// stored plain, into a channel slice (concat for free), or pixel-shuffled by `shuffle_factor`
// (sub-pixel conv, PyTorch PixelShuffle channel order) with no separate shuffle pass.
// fp16 path: tensor cores (mma.m16n8k16, fp32 accumulate); fp32 path: SIMT, exact order-free fp32;
// fp32 storage with ConvOptions::tf32: operands rounded to TF32, tensor cores (mma.m16n8k8 tf32),
// fp32 accumulate (PyTorch's default for fp32 convs). The reference executor runs tf32 by rounding
// the operands (kernels/reference/conv2d.h); the cpu executor refuses it.
// See kernels/conv_bn_act.cu for the tiling.
//
// Usage: pack the weights once (pack_conv_weights), then call conv_bn_act_fwd per inference. The
// kernel configuration (block tile, split-K) is chosen per call by a fixed heuristic (plan_conv,
// documented in kernels/conv_bn_act.cpp); ConvOptions lets tests and benchmarks force one, and
// supplies the fp32 workspace and the tile counters split-K needs (without both, split-K is never
// chosen). Split-K is reduced inside the conv kernel (one launch): the last CTA of each output
// tile, found with an integer counter, sums the slices in a fixed order (bitwise reproducible).
//
// Training (bottom of this header): weights allocated once per use (alloc_conv_weights) and
// re-packed from fp32 master weights after each step (refresh_conv_weights); conv_bwd_data
// (dgrad, same kernels as the forward on the transposed geometry) and conv_bwd_weight (wgrad +
// bias grad, deterministic split reduction), both reading a pixel-shuffled dy in place.
#pragma once

#include <cstddef>
#include <vector>

#include "kernels/core/conv_shape.h"
#include "kernels/core/dispatch.h"
#include "kernels/core/runtime.h"
#include "kernels/core/tensor.h"

namespace farsee {

// How pack_conv_weights / refresh_conv_weights laid the weights out; each executor reads one.
enum class ConvWeightLayout {
  KRSC,      // reference executor: [K][R][S][C], the storage dtype (both uses)
  KRSCRows,  // fp16 kernels: [K][row_elements], row k = KRSC row k (r, s, c order) zero-padded
             //   to a multiple of 8 halves, so each row starts 16-byte aligned (cp.async)
  RSCK,      // fp32 kernels: [R*S*C][K], output channels contiguous (coalesced SIMT B tiles)
  // Backward-data (dgrad) kernels: the GEMM's N is the input channel c, its reduction (r, s, k).
  CRSKRows,  // fp16 dgrad: [C][row_elements], row c = w[k][r][s][c] in (r, s, k) order,
             //   zero-padded to a multiple of 8 halves
  RSKC,      // fp32 dgrad: [R*S*K][C], input channels contiguous
};

// Which kernel a ConvWeights buffer feeds.
enum class ConvWeightUse { Forward, BackwardData };

// Weights in the layout the kernels read, in the executor's memory space. Created once at load.
struct ConvWeights {
  rt::Buffer buffer;
  DType dtype = DType::F32;
  int K = 0, R = 0, S = 0, C = 0;  // logical shape (KRSC); C is per group
  int groups = 1;                  // conv_bn_act supports groups = 1 (depthwise: depthwise_atrous)
  ConvWeightLayout layout = ConvWeightLayout::KRSC;
  int row_elements = 0;  // elements per output channel (KRSC, KRSCRows); R*S*C rounded up for
                         // KRSCRows (e.g. the 3-channel 7x7 stem: 147 -> 152); per input
                         // channel for CRSKRows (R*S*K rounded up to 8)
  Executor executor = Executor::Reference;  // whose memory `buffer` is in
  ConvWeightUse use = ConvWeightUse::Forward;
  // Sub-pixel packing (pack_subpixel_conv_weights, emu/cuda forward layouts): > 1 when the rows
  // (KRSCRows) / columns (RSCK) are in the order of the pixel-shuffled store by this factor t:
  // position n = (i*t + j) * subpixel_stride + c holds conv channel c*t*t + i*t + j for
  // c < K/t^2, zeros for K/t^2 <= c < subpixel_stride (kernels/core/subpixel_store.h).
  int subpixel_factor = 1;
  int subpixel_stride = 0;  // K/t^2 rounded up to 16 bytes of the dtype (8 halves, 4 floats)
};

// GEMM columns the forward kernels compute: K, or t^2 * subpixel_stride when sub-pixel packed.
inline int conv_gemm_columns(const ConvWeights& w) {
  return w.subpixel_factor > 1 ? w.subpixel_factor * w.subpixel_factor * w.subpixel_stride : w.K;
}

// Packs host KRSC fp32 weights [K][R][S][C] for `ctx`'s executor, converting to `dtype`.
ConvWeights pack_conv_weights(const Context& ctx, const std::vector<float>& krsc, int K, int R,
                              int S, int C, DType dtype, int groups = 1);

// pack_conv_weights for a conv whose epilogue pixel-shuffles by shuffle_factor (> 1): the output
// channels are permuted (and padded) so that every store of the kernels' epilogue is one 16-byte
// vector of 8 fp16 / 4 fp32 consecutive channels of one output pixel. When K/t^2 is not a
// multiple of 16 bytes (the 19 logits classes), conv_bn_act_fwd writes ZEROS to channels
// [K/t^2, subpixel_stride) of every y pixel: y's pixel stride must cover them, and the caller must
// own them (the net pads its logits buffer). No split-K. The reference and cpu executors read
// KRSC: there this is pack_conv_weights (subpixel_factor 1).
ConvWeights pack_subpixel_conv_weights(const Context& ctx, const std::vector<float>& krsc, int K,
                                       int R, int S, int C, DType dtype, int shuffle_factor);

// Training: packed weights allocated once (executor memory, zero-filled) for K x R x S x C in
// `dtype`, laid out for `use` (Forward: conv_bn_act_fwd; BackwardData: conv_bwd_data), then
// re-packed after every SGD step from the fp32 master weights KRSC [K*R*S*C] (executor memory)
// by refresh_conv_weights: one kernel launch on emu/cuda (a host loop on the reference).
ConvWeights alloc_conv_weights(const Context& ctx, int K, int R, int S, int C, DType dtype,
                               ConvWeightUse use);
void refresh_conv_weights(const Context& ctx, const float* master_krsc, ConvWeights& w);

struct ConvEpilogue {
  const float* scale = nullptr;  // [K] folded BN scale; null = 1
  const float* bias = nullptr;   // [K] folded BN bias or conv bias; null = 0
  TensorView residual;           // added before ReLU; data == nullptr: none. Shape of the
                                 // un-shuffled conv output; may be a channel slice.
  bool relu = false;
  int shuffle_factor = 1;  // > 1: y = PixelShuffle(conv output, factor); 1, 2, 4 or 8
  // y = MaxPool2d(3, stride 2, pad 1) of the activation (the ResNet stem's pool, fused: the conv
  // output never goes to memory; kernels/core/fused_max_pool.h). Bitwise the conv stored in the
  // dtype, then max_pool_fwd. emu and cuda, fp16 storage, x loaded by cp.async (C % 8 == 0), no
  // residual, shuffle or split-K; the reference and cpu executors refuse it (run the two ops).
  bool max_pool = false;
};

// Shape of y for input shape x.
Shape4 conv_output_shape(const ConvShape& conv, const ConvWeights& w, const ConvEpilogue& e,
                         Shape4 x);

// ---- kernel configuration ----
// Block tiles (output pixels x output channels) of the fp16 tensor-core and fp32 SIMT kernels.
// M128N128W8: 128x128 with the fp16 cp.async kernel's 8-warp main loop (stage rows of 64
// reduction elements, 3 stages: half the barriers per MMA of the 4-warp 128x128); the fp32, tf32
// and fp16 gather kernels run their 128x128 tile for it.
enum class ConvTile { Auto, M128N128, M128N64, M64N64, M128N128W8 };
const char* conv_tile_name(ConvTile t);

struct ConvOptions {
  ConvTile tile = ConvTile::Auto;  // Auto: the heuristic of plan_conv
  int split_k = 0;                 // 0: heuristic (only with workspace and counters); >= 1: forced
  void* workspace = nullptr;       // fp32 split-K partial sums, in the executor's memory
  size_t workspace_bytes = 0;
  bool tf32 = false;  // fp32 storage only: operands rounded to TF32, tensor-core MMAs
  // Split-K arrival counters, one int per output tile, in the executor's memory. Zero-filled ONCE
  // by the owner when allocated (rt::memset); every launch leaves them zero again, so they may be
  // shared by all the convs of a stream and survive graph replays. Never shared by two launches
  // that may run at the same time.
  int* tile_counters = nullptr;
  size_t tile_counter_count = 0;
  // The caller promises that no kernel writes the weights while this conv may run (inference):
  // then, with rt::programmatic_dependent_launch() on an sm_90 GPU, the launch carries the PDL
  // attribute and the kernel fetches its first weight tiles before waiting for the previous
  // kernel (kernels/core/launch.h). Off by default; training never sets it.
  bool programmatic_launch = false;
};

// What a kernel launch does: chosen on the host by plan_conv, executed by emu_impl / cuda_impl.
struct ConvPlan {
  ConvTile tile = ConvTile::M64N64;
  int split_k = 1;                  // reduction slices; > 1 sums fp32 partials from `workspace`
  bool gather_activations = false;  // fp16: element-wise im2col loads (C % 8 != 0, e.g. the
                                    // 3-channel stem, or x not 16-byte aligned) instead of
                                    // 16-byte cp.async of 8 channels
  float* workspace = nullptr;
  bool tf32 = false;                 // fp32: the tf32 tensor-core kernel instead of SIMT FFMA
  int* tile_counters = nullptr;      // split_k > 1: one per output tile (grid.x * grid.y), all zero
  bool max_pool = false;             // ConvEpilogue::max_pool: the fused-pool variant (128x64 tile)
  bool programmatic_launch = false;  // ConvOptions::programmatic_launch
};

// The configuration conv_bn_act_fwd runs for these arguments (throws if a forced one is invalid).
ConvPlan plan_conv(const ConvShape& conv, const ConvWeights& w, const TensorView& x,
                   const ConvOptions& options = {});
// Bytes of fp32 workspace the heuristic's split-K would use for input shape x (0: no split-K):
// allocate the maximum over a network's convs once and pass it in ConvOptions.
size_t conv_workspace_bytes(const ConvShape& conv, const ConvWeights& w, Shape4 x);
// Tile counters (ConvOptions.tile_counters) the heuristic's split-K would use (0: no split-K).
size_t conv_tile_counter_count(const ConvShape& conv, const ConvWeights& w, Shape4 x);

#define FARSEE_CONV_BN_ACT_FWD_ARGS                                                     \
  const Context &ctx, const ConvShape &conv, const TensorView &x, const ConvWeights &w, \
      const ConvEpilogue &epilogue, const TensorView &y
// The implementations get the validated arguments and the plan (the reference ignores it).
#define FARSEE_CONV_BN_ACT_IMPL_ARGS FARSEE_CONV_BN_ACT_FWD_ARGS, const ConvPlan& plan
FARSEE_DECLARE_OP(conv_bn_act_fwd, FARSEE_CONV_BN_ACT_IMPL_ARGS);

// Validates every argument (shapes, dtypes, slices, weight layout) and dispatches on ctx.executor.
void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS);
void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS, const ConvOptions& options);

// ---- backward (training) ----
// The forward used in training is conv_bn_act_fwd with an identity epilogue (or a bias); these
// are the gradients of its raw conv output. dy: gradient of the conv's STORED output: the conv
// output's shape, or, if shuffle_factor = t > 1, the pixel-shuffled [N, OH*t, OW*t, K/t^2] (read
// through the shuffle mapping, never un-shuffled by a copy). Storage fp32 or fp16 (x, dy, dx
// and the weights all the same dtype); accumulation fp32; groups = 1.
//
// dgrad: dx = dL/dx (accumulate = false) or dx += dL/dx (true). An implicit GEMM on the forward
// kernels (M = input pixels, N = C, reduction = (r, s, k) over the output-gradient taps that
// reach the pixel); w must be allocated with ConvWeightUse::BackwardData. options: tile, split-K,
// its workspace and tile counters (sized by conv_bwd_data_workspace_bytes / _tile_counter_count).
void conv_bwd_data(const Context& ctx, const ConvShape& conv, const TensorView& dy,
                   int shuffle_factor, const ConvWeights& w, const TensorView& dx, bool accumulate,
                   const ConvOptions& options = {});
// wgrad (+ bias grad): dw (fp32 KRSC [K*R*S*C], executor memory) += sum_pixels dy * x,
// db (fp32 [K] or null) += sum_pixels dy. The N*OH*OW reduction is split into fixed chunks whose
// fp32 partial sums go to `workspace` (conv_bwd_weight_workspace_bytes) and are summed in a fixed
// order inside the same launches (the last CTA of each tile, found with the tile counters, as
// the forward's split-K): bitwise reproducible, no float atomics. K = dy's conv channel count
// (dy.c * t^2). Without workspace and counters the reduction is not split.
struct ConvWgradOptions {
  void* workspace = nullptr;  // fp32 partials (conv_bwd_weight_workspace_bytes)
  size_t workspace_bytes = 0;
  int* tile_counters = nullptr;   // zero-filled once, left zero (as ConvOptions.tile_counters)
  size_t tile_counter_count = 0;  // conv_bwd_weight_tile_counter_count
  int splits = 0;                 // 0: heuristic; >= 1: forced (tests, benchmarks)
  bool tf32 = false;              // as ConvOptions.tf32 (fp32 x and dy only)
};
void conv_bwd_weight(const Context& ctx, const ConvShape& conv, const TensorView& x,
                     const TensorView& dy, int shuffle_factor, float* dw, float* db,
                     const ConvWgradOptions& options);
// Without tile counters: a split reduction only where it needs none (splits 1).
void conv_bwd_weight(const Context& ctx, const ConvShape& conv, const TensorView& x,
                     const TensorView& dy, int shuffle_factor, float* dw, float* db,
                     void* workspace, size_t workspace_bytes);
size_t conv_bwd_weight_workspace_bytes(const ConvShape& conv, int K, Shape4 x);
size_t conv_bwd_weight_tile_counter_count(const ConvShape& conv, int K, Shape4 x);
// conv_bwd_data's ConvOptions.workspace and tile_counters (split-K) sized by:
size_t conv_bwd_data_workspace_bytes(const ConvShape& conv, int K, Shape4 x);
size_t conv_bwd_data_tile_counter_count(const ConvShape& conv, int K, Shape4 x);

// How conv_bwd_weight splits its reduction (chosen on the host; tests may force `splits`).
struct ConvWgradPlan {
  int splits = 1;  // chunks of the N*OH*OW reduction; partials [splits][K*R*S*C] (+ [splits][K])
  bool tensor_cores = false;  // fp16 mma kernel: x's C and dy's stored channel count multiples
                              // of 8, x and dy 16-byte aligned (base, pixel stride); else SIMT
  float* workspace = nullptr;
  bool tf32 = false;             // fp32 storage: operands rounded to TF32, tensor-core MMAs
  int* tile_counters = nullptr;  // splits > 1: the GEMM tiles', then one per 32-channel db block
};
// Forced splits (>= 1) for tests and benchmarks; 0 = heuristic.
void conv_bwd_weight(const Context& ctx, const ConvShape& conv, const TensorView& x,
                     const TensorView& dy, int shuffle_factor, float* dw, float* db,
                     void* workspace, size_t workspace_bytes, int forced_splits);

#define FARSEE_CONV_BWD_DATA_IMPL_ARGS                                                 \
  const Context &ctx, const ConvShape &conv, const TensorView &dy, int shuffle_factor, \
      const ConvWeights &w, const TensorView &dx, bool accumulate, const ConvPlan &plan
#define FARSEE_CONV_BWD_WEIGHT_IMPL_ARGS                                                \
  const Context &ctx, const ConvShape &conv, const TensorView &x, const TensorView &dy, \
      int shuffle_factor, float *dw, float *db, const ConvWgradPlan &plan
FARSEE_DECLARE_OP(refresh_conv_weights, const Context& ctx, const float* master_krsc,
                  ConvWeights& w);
FARSEE_DECLARE_OP(conv_bwd_data, FARSEE_CONV_BWD_DATA_IMPL_ARGS);
FARSEE_DECLARE_OP(conv_bwd_weight, FARSEE_CONV_BWD_WEIGHT_IMPL_ARGS);

}  // namespace farsee
