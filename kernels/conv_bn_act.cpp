// Host side of conv_bn_act: weight packing, output shape, the kernel-configuration heuristic,
// argument validation and dispatch to the executors.
//
// Configuration heuristic (plan_conv; no run-time autotuning, the same plan on every machine):
//   1. Block tile: the largest of 128x128 (only when K > 64: a narrower K would leave half the
//      tile idle), 128x64, 64x64 whose grid has at least kMinBlocks = 2 waves of an H100's 132 SMs;
//      if none does, 64x64. An fp16 128x128 on the cp.async loader runs the 8-warp main loop
//      (M128N128W8) where its 64-channel stage rows are full (eight_warp_tile_wins).
//   2. Split-K, only for the 64x64 tile when even its grid is below kMinBlocks (the 16x32 and
//      32x64 maps of the net): enough reduction slices to reach kMinBlocks, at most kMaxSplits,
//      and at least kMinReductionPerSplit reduction elements per slice; only with a workspace
//      (ConvOptions) large enough for the fp32 partial sums [splits][M][K] and tile counters for
//      the grid's output tiles (the last CTA of a tile reduces it: kernels/conv_bn_act.cu).
//   fp16 activations are loaded 8 channels (16 bytes) at a time when C % 8 == 0 and x is 16-byte
//   aligned (base and pixel stride); otherwise (3-channel stem, odd slices) by the gather loader.
// Dgrad (conv_bwd_data) plans the same way on its GEMM (M = input pixels, N = C, reduction
//   R*S*K over dy's channels; dy shuffled -> fp16 gather loader).
// TF32 (ConvOptions::tf32, fp32 storage only): the same tiles and split-K, the tf32 kernels; the
//   cpu executor refuses it (it has no TF32 GEMM; the reference rounds the operands instead).
// Wgrad (conv_bwd_weight): 64x64 tiles of dw[K][R*S*C]; when that grid is below kMinBlocks, the
//   output pixels are split into enough chunks to reach it, at most kMaxWgradSplits and at least
//   kMinWgradPixelsPerSplit pixels each, and only with a workspace for the fp32 partials
//   [splits][K*R*S*C + K] and tile counters (one per 64x64 tile of dw, one per 32 channels of db).
#include "kernels/conv_bn_act.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/core/cp_async_tiles.h"
#include "kernels/core/half_convert.h"
#include "kernels/core/nhwc_index.h"
#include "kernels/pool.h"

namespace farsee {
namespace {

constexpr int kSmCount = 132;  // H100 SXM; fixed so the plan does not depend on the machine
constexpr int64_t kMinBlocks = 2 * kSmCount;
constexpr int kMaxSplits = 8;
constexpr int kMinReductionPerSplit = 128;

struct TileDims {
  int bm, bn;
};
TileDims tile_dims(ConvTile t) {
  switch (t) {
    case ConvTile::M128N128:
    case ConvTile::M128N128W8:
      return {128, 128};
    case ConvTile::M128N64:
      return {128, 64};
    default:
      return {64, 64};
  }
}

int64_t blocks_of(ConvTile t, int64_t M, int K) {
  const TileDims d = tile_dims(t);
  return ((M + d.bm - 1) / d.bm) * ((K + d.bn - 1) / d.bn);
}

// The implicit GEMM a conv kernel runs: M rows (pixels of the result), N columns (output
// channels: K forward, C for dgrad), reduction taps x src_c (src_c: channels of the gathered
// operand: C forward, K for dgrad).
struct GemmDims {
  int64_t M;
  int N;
  int taps;
  int src_c;
  DType dtype;
};

// Reduction steps the kernel walks (kernels/conv_bn_act.cu): 8 elements (fp32), 32 halves of the
// flat (r, s, c) order (fp16 gather loader) or 32 channels of each tap (fp16 cp.async loader; 32 /
// C whole taps when C is 8 or 16); 64 with the 8-warp tile (cp.async loader).
int reduction_tiles(const GemmDims& d, bool gather, ConvTile tile = ConvTile::Auto) {
  const int reduction = d.taps * d.src_c;
  if (d.dtype == DType::F32) return (reduction + 7) / 8;
  if (gather) return (reduction + 31) / 32;
  return cp_async_reduction_tiles(d.taps, d.src_c, tile == ConvTile::M128N128W8 ? 64 : 32);
}

// The 8-warp 128x128 main loop (ConvTile::M128N128W8) replaces the 4-warp one wherever the
// planner picks 128x128 for the fp16 cp.async kernel and its stage rows of 64 channels are full
// (C a multiple of 64, or C dividing 64: whole taps) over at least kW8MinSteps reduction steps
// (the 3-stage pipeline full): the same grid and global traffic, half the block barriers per MMA
// (1 per 512 warp MMAs instead of 256; emu counters, tests/kernels/conv_bn_act_test.cpp) and 128
// reduction elements in flight instead of 64.
constexpr int kW8MinSteps = 3;
bool eight_warp_tile_wins(const GemmDims& d, bool gather) {
  if (d.dtype != DType::F16 || gather || !(d.src_c % 64 == 0 || 64 % d.src_c == 0)) return false;
  return reduction_tiles(d, false, ConvTile::M128N128W8) >= kW8MinSteps;
}

int64_t output_pixels(const ConvShape& conv, Shape4 x) {
  return int64_t(x.n) * conv.out_h(x.h) * conv.out_w(x.w);
}

// fp16: true when the gathered operand cannot be loaded 8 channels (16 bytes) at a time.
bool gathers_activations(DType dtype, const TensorView& src, int shuffle_factor = 1) {
  if (dtype == DType::F32) return false;  // the SIMT kernel always loads element-wise
  return !(shuffle_factor == 1 && src.c() % 8 == 0 && src.pixel_stride % 8 == 0 &&
           reinterpret_cast<uintptr_t>(src.data) % 16 == 0);
}

ConvTile auto_tile(int64_t M, int K) {
  for (ConvTile t : {ConvTile::M128N128, ConvTile::M128N64}) {
    if (t == ConvTile::M128N128 && K <= 64) continue;
    if (blocks_of(t, M, K) >= kMinBlocks) return t;
  }
  return ConvTile::M64N64;
}

int auto_splits(ConvTile tile, const GemmDims& d, int tiles) {
  const int64_t blocks = blocks_of(tile, d.M, d.N);
  if (tile != ConvTile::M64N64 || blocks >= kMinBlocks) return 1;
  int splits = int((kMinBlocks + blocks - 1) / blocks);
  splits = std::min(splits, kMaxSplits);
  splits = std::min(splits, d.taps * d.src_c / kMinReductionPerSplit);
  splits = std::min(splits, tiles);
  return std::max(splits, 1);
}

size_t workspace_bytes_for(int splits, int64_t M, int K) {
  return splits > 1 ? size_t(splits) * size_t(M) * size_t(K) * sizeof(float) : 0;
}

// Split-K counters: one per output tile of the grid (split-K CTAs of a tile share one).
size_t tile_counters_for(int splits, ConvTile tile, int64_t M, int K) {
  return splits > 1 ? size_t(blocks_of(tile, M, K)) : 0;
}

// The layout executor e's kernels read for `use`.
ConvWeightLayout weight_layout(Executor e, DType dtype, ConvWeightUse use) {
  if (is_host_reference_layout(e)) return ConvWeightLayout::KRSC;  // reference, cpu
  if (use == ConvWeightUse::Forward)
    return dtype == DType::F16 ? ConvWeightLayout::KRSCRows : ConvWeightLayout::RSCK;
  return dtype == DType::F16 ? ConvWeightLayout::CRSKRows : ConvWeightLayout::RSKC;
}

void validate_weights(const ConvWeights& w, const char* what) {
  FARSEE_REQUIRE(w.buffer.data() != nullptr && w.K >= 1 && w.R >= 1 && w.S >= 1 && w.C >= 1,
                 what << ": weights are empty (not packed with pack_conv_weights)");
}

}  // namespace

const char* conv_tile_name(ConvTile t) {
  switch (t) {
    case ConvTile::Auto:
      return "auto";
    case ConvTile::M128N128:
      return "128x128";
    case ConvTile::M128N64:
      return "128x64";
    case ConvTile::M64N64:
      return "64x64";
    case ConvTile::M128N128W8:
      return "128x128w8";
  }
  return "?";
}

ConvWeights pack_conv_weights(const Context& ctx, const std::vector<float>& krsc, int K, int R,
                              int S, int C, DType dtype, int groups) {
  FARSEE_REQUIRE(K >= 1 && R >= 1 && S >= 1 && C >= 1,
                 "pack_conv_weights: shape K=" << K << " R=" << R << " S=" << S << " C=" << C
                                               << " must be positive");
  FARSEE_REQUIRE(groups == 1, "pack_conv_weights: groups = "
                                  << groups
                                  << " not supported by conv_bn_act (expected 1; depthwise "
                                     "convolutions use depthwise_atrous)");
  const int64_t reduction = int64_t(R) * S * C;
  FARSEE_REQUIRE(
      int64_t(krsc.size()) == K * reduction,
      "pack_conv_weights: got " << krsc.size() << " weights, expected K*R*S*C = " << K * reduction);
  ConvWeights w;
  w.dtype = dtype;
  w.K = K;
  w.R = R;
  w.S = S;
  w.C = C;
  w.groups = groups;
  w.executor = ctx.executor;

  // Packed values in the order the executor reads, as fp32; converted to dtype below.
  std::vector<float> packed;
  if (is_host_reference_layout(ctx.executor)) {
    w.layout = ConvWeightLayout::KRSC;
    w.row_elements = int(reduction);
    packed = krsc;
  } else if (dtype == DType::F16) {
    w.layout = ConvWeightLayout::KRSCRows;
    w.row_elements = int((reduction + 7) / 8 * 8);
    packed.assign(size_t(K) * w.row_elements, 0.0f);
    for (int k = 0; k < K; ++k) {
      std::copy(krsc.begin() + k * reduction, krsc.begin() + (k + 1) * reduction,
                packed.begin() + int64_t(k) * w.row_elements);
    }
  } else {
    w.layout = ConvWeightLayout::RSCK;
    w.row_elements = int(reduction);
    packed.resize(krsc.size());
    for (int k = 0; k < K; ++k) {
      for (int64_t red = 0; red < reduction; ++red) packed[red * K + k] = krsc[k * reduction + red];
    }
  }

  std::vector<uint16_t> halves;  // alive until the synchronisation below
  if (dtype == DType::F32) {
    w.buffer = rt::Buffer(ctx.executor, packed.size() * sizeof(float));
    rt::copy_to_device(ctx, w.buffer.data(), packed.data(), packed.size() * sizeof(float));
  } else {
    halves.resize(packed.size());
    for (size_t i = 0; i < packed.size(); ++i) halves[i] = float_to_half_bits(packed[i]);
    w.buffer = rt::Buffer(ctx.executor, halves.size() * sizeof(uint16_t));
    rt::copy_to_device(ctx, w.buffer.data(), halves.data(), halves.size() * sizeof(uint16_t));
  }
  rt::synchronize(ctx);  // the host vectors die here
  return w;
}

ConvWeights pack_subpixel_conv_weights(const Context& ctx, const std::vector<float>& krsc, int K,
                                       int R, int S, int C, DType dtype, int shuffle_factor) {
  const int t = shuffle_factor, t2 = t * t;
  FARSEE_REQUIRE(t >= 2 && K % t2 == 0, "pack_subpixel_conv_weights: shuffle_factor "
                                            << t << " must be >= 2 and divide K = " << K
                                            << " by its square");
  if (is_host_reference_layout(ctx.executor))
    return pack_conv_weights(ctx, krsc, K, R, S, C, dtype);
  const int64_t row = int64_t(R) * S * C;
  FARSEE_REQUIRE(int64_t(krsc.size()) == K * row,
                 "pack_subpixel_conv_weights: got " << krsc.size()
                                                    << " weights, expected K*R*S*C = " << K * row);
  const int channels = K / t2, vector = 16 / int(dtype_size(dtype));
  const int stride = (channels + vector - 1) / vector * vector;
  // Row n = ij * stride + c of the permuted KRSC holds conv channel c*t2 + ij; padding rows 0.
  std::vector<float> permuted(size_t(t2) * stride * row, 0.0f);
  for (int ij = 0; ij < t2; ++ij) {
    for (int c = 0; c < channels; ++c) {
      const int64_t k = int64_t(c) * t2 + ij;
      std::copy(krsc.begin() + k * row, krsc.begin() + (k + 1) * row,
                permuted.begin() + (int64_t(ij) * stride + c) * row);
    }
  }
  ConvWeights w = pack_conv_weights(ctx, permuted, t2 * stride, R, S, C, dtype);
  w.K = K;
  w.subpixel_factor = t;
  w.subpixel_stride = stride;
  return w;
}

Shape4 conv_output_shape(const ConvShape& conv, const ConvWeights& w, const ConvEpilogue& e,
                         Shape4 x) {
  const int t = e.shuffle_factor;
  const Shape4 out{x.n, conv.out_h(x.h) * t, conv.out_w(x.w) * t, w.K / (t * t)};
  return e.max_pool ? max_pool_output_shape(MaxPoolParams{}, out) : out;
}

namespace {

// tf32 is fp32 storage on the kernel executors and the reference.
void require_tf32_supported(const char* op, const Context& ctx, DType dtype) {
  FARSEE_REQUIRE(dtype == DType::F32,
                 op << ": tf32 needs fp32 storage, got " << dtype_name(dtype) << " operands");
  FARSEE_REQUIRE(ctx.executor != Executor::Cpu,
                 op << ": the cpu executor has no tf32 convolutions (use --precision fp32 on cpu, "
                       "or the reference, emu or cuda executor)");
}

// The plan of an implicit-GEMM conv kernel (forward or dgrad) for its GEMM dims.
ConvPlan plan_gemm(const GemmDims& d, bool gather, const ConvOptions& options) {
  ConvPlan plan;
  plan.gather_activations = gather;
  plan.tf32 = options.tf32;
  plan.tile = options.tile == ConvTile::Auto ? auto_tile(d.M, d.N) : options.tile;
  if (options.tile == ConvTile::Auto && plan.tile == ConvTile::M128N128 &&
      eight_warp_tile_wins(d, gather))
    plan.tile = ConvTile::M128N128W8;
  const int tiles = reduction_tiles(d, gather, plan.tile);

  if (options.split_k >= 1) {
    FARSEE_REQUIRE(options.split_k <= tiles,
                   "ConvOptions.split_k = " << options.split_k << " exceeds the " << tiles
                                            << " reduction steps of this convolution");
    plan.split_k = options.split_k;
    const size_t need = workspace_bytes_for(plan.split_k, d.M, d.N);
    FARSEE_REQUIRE(options.workspace_bytes >= need && (need == 0 || options.workspace),
                   "ConvOptions.workspace: split_k = " << plan.split_k << " needs " << need
                                                       << " bytes, got "
                                                       << options.workspace_bytes);
    const size_t counters = tile_counters_for(plan.split_k, plan.tile, d.M, d.N);
    FARSEE_REQUIRE(
        options.tile_counter_count >= counters && (counters == 0 || options.tile_counters),
        "ConvOptions.tile_counters: split_k = "
            << plan.split_k << " needs " << counters << " zero-filled counters, got "
            << (options.tile_counters ? options.tile_counter_count : 0));
  } else {
    FARSEE_REQUIRE(options.split_k == 0,
                   "ConvOptions.split_k = " << options.split_k << ": expected 0 (auto) or >= 1");
    plan.split_k = auto_splits(plan.tile, d, tiles);
    // Fewer slices when the workspace is smaller (none, or too few counters: no split-K).
    while (plan.split_k > 1 &&
           (options.workspace == nullptr ||
            workspace_bytes_for(plan.split_k, d.M, d.N) > options.workspace_bytes))
      --plan.split_k;
    if (options.tile_counters == nullptr ||
        tile_counters_for(plan.split_k, plan.tile, d.M, d.N) > options.tile_counter_count)
      plan.split_k = 1;
  }
  plan.programmatic_launch = options.programmatic_launch;
  plan.workspace = plan.split_k > 1 ? static_cast<float*>(options.workspace) : nullptr;
  plan.tile_counters = plan.split_k > 1 ? options.tile_counters : nullptr;
  return plan;
}

// The heuristic's split count (auto tile). The cp.async loader has the fewest reduction steps, so
// this bounds the gather case too.
int gemm_auto_splits(const GemmDims& d) {
  return auto_splits(auto_tile(d.M, d.N), d, reduction_tiles(d, false));
}
size_t gemm_workspace_bytes(const GemmDims& d) {
  return workspace_bytes_for(gemm_auto_splits(d), d.M, d.N);
}
size_t gemm_tile_counter_count(const GemmDims& d) {
  return tile_counters_for(gemm_auto_splits(d), auto_tile(d.M, d.N), d.M, d.N);
}

GemmDims forward_dims(const ConvShape& conv, const ConvWeights& w, Shape4 x) {
  return GemmDims{output_pixels(conv, x), conv_gemm_columns(w), w.R * w.S, w.C, w.dtype};
}

// Sub-pixel packed weights: the epilogue's channel order is the packing's, which the split-K
// partials and reduction do not know, so these convs never split (they run on the large maps).
void validate_subpixel(const ConvWeights& w, const ConvEpilogue& e, const TensorView& y) {
  if (w.subpixel_factor <= 1) return;
  const char* op = "conv_bn_act_fwd";
  FARSEE_REQUIRE(
      e.shuffle_factor == w.subpixel_factor,
      op << ": weights packed for the sub-pixel store by " << w.subpixel_factor
         << " (pack_subpixel_conv_weights), epilogue shuffle_factor = " << e.shuffle_factor);
  FARSEE_REQUIRE(y.pixel_stride >= w.subpixel_stride,
                 op << ": y pixel stride " << y.pixel_stride << " < " << w.subpixel_stride
                    << ": the sub-pixel store writes " << y.c() << " channels and zeros up to "
                    << w.subpixel_stride << " (pad y's buffer)");
}

// ConvEpilogue::max_pool: what the fused-pool kernel variant supports; the plan's tile becomes
// 128x64 (the 11 x 11 conv pixels of a 5 x 5 pooled tile fill 121 of its 128 rows), no split-K.
void plan_fused_pool(const Context& ctx, const ConvWeights& w, const ConvEpilogue& e,
                     const ConvOptions& options, ConvPlan& plan) {
  const char* op = "conv_bn_act_fwd (ConvEpilogue::max_pool)";
  FARSEE_REQUIRE(!is_host_reference_layout(ctx.executor),
                 op << ": the fused max-pool runs on emu and cuda; on '"
                    << executor_name(ctx.executor) << "' run conv_bn_act_fwd, then max_pool_fwd");
  FARSEE_REQUIRE(w.dtype == DType::F16 && !options.tf32,
                 op << ": fp16 storage only (tensor-core kernel), got "
                    << (options.tf32 ? "tf32" : dtype_name(w.dtype)));
  FARSEE_REQUIRE(!plan.gather_activations,
                 op << ": x must be loaded by cp.async (C % 8 == 0, 16-byte aligned base and "
                       "pixel stride), got C = "
                    << w.C);
  FARSEE_REQUIRE(e.residual.data == nullptr && e.shuffle_factor == 1 && w.subpixel_factor == 1,
                 op << ": no residual, pixel shuffle or sub-pixel packed weights");
  FARSEE_REQUIRE(options.split_k <= 1, op << ": split_k = " << options.split_k << ", expected 1");
  FARSEE_REQUIRE(options.tile == ConvTile::Auto || options.tile == ConvTile::M128N64,
                 op << ": tile " << conv_tile_name(options.tile) << ", expected auto or 128x64");
  plan.tile = ConvTile::M128N64;
  plan.split_k = 1;
  plan.workspace = nullptr;
  plan.tile_counters = nullptr;
  plan.max_pool = true;
}

}  // namespace

ConvPlan plan_conv(const ConvShape& conv, const ConvWeights& w, const TensorView& x,
                   const ConvOptions& options) {
  ConvOptions o = options;
  if (w.subpixel_factor > 1) {
    FARSEE_REQUIRE(o.split_k <= 1, "conv_bn_act_fwd: split_k = "
                                       << o.split_k
                                       << " with sub-pixel packed weights (they never split)");
    o.split_k = 1;
  }
  return plan_gemm(forward_dims(conv, w, x.shape), gathers_activations(w.dtype, x), o);
}

size_t conv_workspace_bytes(const ConvShape& conv, const ConvWeights& w, Shape4 x) {
  if (w.subpixel_factor > 1) return 0;
  return gemm_workspace_bytes(forward_dims(conv, w, x));
}

size_t conv_tile_counter_count(const ConvShape& conv, const ConvWeights& w, Shape4 x) {
  return gemm_tile_counter_count(forward_dims(conv, w, x));
}

void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS) {
  conv_bn_act_fwd(ctx, conv, x, w, epilogue, y, ConvOptions{});
}

void conv_bn_act_fwd(FARSEE_CONV_BN_ACT_FWD_ARGS, const ConvOptions& options) {
  const char* op = "conv_bn_act_fwd";
  validate_weights(w, op);
  FARSEE_REQUIRE(w.executor == ctx.executor, op << ": weights were packed for executor '"
                                                << executor_name(w.executor) << "', running on '"
                                                << executor_name(ctx.executor) << "'");
  FARSEE_REQUIRE(w.groups == 1 && conv.groups == 1,
                 op << ": groups = " << conv.groups << " (weights: " << w.groups
                    << "); expected 1 (depthwise convolutions use depthwise_atrous)");
  FARSEE_REQUIRE(conv.kernel_h == w.R && conv.kernel_w == w.S,
                 op << ": conv kernel " << conv.kernel_h << "x" << conv.kernel_w
                    << " does not match the weights' " << w.R << "x" << w.S);
  FARSEE_REQUIRE(conv.stride_h >= 1 && conv.stride_w >= 1 && conv.dilation_h >= 1 &&
                     conv.dilation_w >= 1 && conv.pad_h >= 0 && conv.pad_w >= 0,
                 op << ": stride " << conv.stride_h << "x" << conv.stride_w << ", dilation "
                    << conv.dilation_h << "x" << conv.dilation_w << ", pad " << conv.pad_h << "x"
                    << conv.pad_w << ": expected stride, dilation >= 1 and pad >= 0");
  FARSEE_REQUIRE(x.data != nullptr && y.data != nullptr, op << ": x or y has no data");
  require_dtype(x, "conv_bn_act_fwd: x", w.dtype);
  require_dtype(y, "conv_bn_act_fwd: y", w.dtype);
  FARSEE_REQUIRE(x.c() == w.C,
                 op << ": x has " << x.c() << " channels, the weights expect C = " << w.C);
  FARSEE_REQUIRE(x.pixel_stride >= x.c() && y.pixel_stride >= y.c(),
                 op << ": pixel stride smaller than the channel count (x " << x.pixel_stride
                    << " < " << x.c() << " or y " << y.pixel_stride << " < " << y.c() << ")");
  const int oh = conv.out_h(x.h()), ow = conv.out_w(x.w());
  FARSEE_REQUIRE(x.n() >= 1 && oh >= 1 && ow >= 1, op << ": input " << to_string(x.shape)
                                                      << " gives an empty output " << oh << "x"
                                                      << ow);
  const int t = epilogue.shuffle_factor;
  FARSEE_REQUIRE(t == 1 || t == 2 || t == 4 || t == 8,
                 op << ": shuffle_factor = " << t << ", expected 1, 2, 4 or 8");
  FARSEE_REQUIRE(w.K % (t * t) == 0, op << ": K = " << w.K << " output channels not divisible by "
                                        << "shuffle_factor^2 = " << t * t);
  require_shape(y, "conv_bn_act_fwd: y", conv_output_shape(conv, w, epilogue, x.shape));
  if (epilogue.residual.data != nullptr) {
    require_dtype(epilogue.residual, "conv_bn_act_fwd: residual", w.dtype);
    require_shape(epilogue.residual, "conv_bn_act_fwd: residual (un-shuffled conv output)",
                  Shape4{x.n(), oh, ow, w.K});
    FARSEE_REQUIRE(epilogue.residual.pixel_stride >= w.K,
                   op << ": residual pixel stride " << epilogue.residual.pixel_stride << " < K");
  }
  FARSEE_REQUIRE(w.layout == weight_layout(ctx.executor, w.dtype, ConvWeightUse::Forward),
                 op << ": weights are not in the layout of executor '"
                    << executor_name(ctx.executor)
                    << "' (pack them with pack_conv_weights for this executor)");
  if (!is_host_reference_layout(ctx.executor)) {
    FARSEE_REQUIRE(
        output_pixels(conv, x.shape) < (int64_t(1) << 31) && x.shape.pixels() < (int64_t(1) << 31),
        op << ": x " << to_string(x.shape)
           << " too large: kernels index pixels with 32-bit integers");
  }
  validate_subpixel(w, epilogue, y);
  if (options.tf32) require_tf32_supported(op, ctx, w.dtype);
  ConvPlan plan = plan_conv(conv, w, x, options);
  if (epilogue.max_pool) plan_fused_pool(ctx, w, epilogue, options, plan);
  FARSEE_DISPATCH(ctx, conv_bn_act_fwd, ctx, conv, x, w, epilogue, y, plan);
}

// ---------------------------------------------------------------------------------------------
// Training: weight buffers and the backward passes.

ConvWeights alloc_conv_weights(const Context& ctx, int K, int R, int S, int C, DType dtype,
                               ConvWeightUse use) {
  FARSEE_REQUIRE(K >= 1 && R >= 1 && S >= 1 && C >= 1,
                 "alloc_conv_weights: shape K=" << K << " R=" << R << " S=" << S << " C=" << C
                                                << " must be positive");
  ConvWeights w;
  w.dtype = dtype;
  w.K = K;
  w.R = R;
  w.S = S;
  w.C = C;
  w.executor = ctx.executor;
  w.use = use;
  w.layout = weight_layout(ctx.executor, dtype, use);
  int64_t elements = 0;
  switch (w.layout) {
    case ConvWeightLayout::KRSC:
    case ConvWeightLayout::RSCK:
      w.row_elements = R * S * C;
      elements = int64_t(K) * w.row_elements;
      break;
    case ConvWeightLayout::KRSCRows:
      w.row_elements = (R * S * C + 7) / 8 * 8;
      elements = int64_t(K) * w.row_elements;
      break;
    case ConvWeightLayout::CRSKRows:
      w.row_elements = (R * S * K + 7) / 8 * 8;
      elements = int64_t(C) * w.row_elements;
      break;
    case ConvWeightLayout::RSKC:
      w.row_elements = R * S * K;
      elements = int64_t(C) * w.row_elements;
      break;
  }
  const size_t bytes = size_t(elements) * dtype_size(dtype);
  w.buffer = rt::Buffer(ctx.executor, bytes);
  rt::memset(ctx, w.buffer.data(), 0, bytes);  // padding stays zero; refresh writes the rest
  return w;
}

void refresh_conv_weights(const Context& ctx, const float* master_krsc, ConvWeights& w) {
  const char* op = "refresh_conv_weights";
  validate_weights(w, op);
  FARSEE_REQUIRE(master_krsc != nullptr, op << ": master weights are null");
  FARSEE_REQUIRE(w.executor == ctx.executor, op << ": weights were allocated for executor '"
                                                << executor_name(w.executor) << "', running on '"
                                                << executor_name(ctx.executor) << "'");
  FARSEE_REQUIRE(w.layout == weight_layout(ctx.executor, w.dtype, w.use),
                 op << ": weights not allocated by alloc_conv_weights for this executor");
  FARSEE_DISPATCH(ctx, refresh_conv_weights, ctx, master_krsc, w);
}

namespace {

void validate_backward_geometry(const char* op, const ConvShape& conv, const ConvWeights* w) {
  FARSEE_REQUIRE(conv.groups == 1, op << ": groups = " << conv.groups << ", expected 1");
  FARSEE_REQUIRE(conv.kernel_h >= 1 && conv.kernel_w >= 1 && conv.stride_h >= 1 &&
                     conv.stride_w >= 1 && conv.dilation_h >= 1 && conv.dilation_w >= 1 &&
                     conv.pad_h >= 0 && conv.pad_w >= 0,
                 op << ": kernel " << conv.kernel_h << "x" << conv.kernel_w << ", stride "
                    << conv.stride_h << "x" << conv.stride_w << ", dilation " << conv.dilation_h
                    << "x" << conv.dilation_w << ", pad " << conv.pad_h << "x" << conv.pad_w
                    << ": expected kernel, stride, dilation >= 1 and pad >= 0");
  if (w != nullptr) {
    FARSEE_REQUIRE(conv.kernel_h == w->R && conv.kernel_w == w->S,
                   op << ": conv kernel " << conv.kernel_h << "x" << conv.kernel_w
                      << " does not match the weights' " << w->R << "x" << w->S);
  }
}

// dy's expected (stored) shape for input shape x, K conv output channels and shuffle t.
Shape4 output_grad_shape(const char* op, const ConvShape& conv, Shape4 x, int K, int t) {
  FARSEE_REQUIRE(t == 1 || t == 2 || t == 4 || t == 8,
                 op << ": shuffle_factor = " << t << ", expected 1, 2, 4 or 8");
  FARSEE_REQUIRE(K % (t * t) == 0, op << ": K = " << K << " output channels not divisible by "
                                      << "shuffle_factor^2 = " << t * t);
  const int oh = conv.out_h(x.h), ow = conv.out_w(x.w);
  FARSEE_REQUIRE(x.n >= 1 && oh >= 1 && ow >= 1,
                 op << ": input " << to_string(x) << " gives an empty output " << oh << "x" << ow);
  return Shape4{x.n, oh * t, ow * t, K / (t * t)};
}

void require_int_sizes(const char* op, const Context& ctx, Shape4 x, Shape4 dy) {
  if (is_host_reference_layout(ctx.executor)) return;
  FARSEE_REQUIRE(
      x.pixels() < (int64_t(1) << 31) && dy.pixels() < (int64_t(1) << 31),
      op << ": x " << to_string(x) << " too large: kernels index pixels with 32-bit integers");
}

GemmDims dgrad_dims(const ConvShape& conv, int K, Shape4 x, DType dtype) {
  return GemmDims{x.pixels(), x.c, conv.kernel_h * conv.kernel_w, K, dtype};
}

// wgrad: the GEMM dw[K][R*S*C] reduces over the conv output pixels in kWgradStep-pixel steps;
// `splits` chunks when the (64 x 64)-tile grid alone is below kMinBlocks, each chunk at least
// kMinWgradPixelsPerSplit pixels, at most kMaxWgradSplits.
constexpr int kWgradTile = 64;
constexpr int kWgradBiasChannels = 32;  // = kBiasChannels in kernels/conv_bn_act.cu
constexpr int kMaxWgradSplits = 64;
constexpr int64_t kMinWgradPixelsPerSplit = 512;

int wgrad_auto_splits(const ConvShape& conv, int K, Shape4 x) {
  const int64_t M = output_pixels(conv, x);
  const int64_t rsc = int64_t(conv.kernel_h) * conv.kernel_w * x.c;
  const int64_t blocks =
      ((K + kWgradTile - 1) / kWgradTile) * ((rsc + kWgradTile - 1) / kWgradTile);
  if (blocks >= kMinBlocks) return 1;
  int64_t splits = (kMinBlocks + blocks - 1) / blocks;
  splits = std::min<int64_t>(splits, kMaxWgradSplits);
  splits = std::min<int64_t>(splits, M / kMinWgradPixelsPerSplit);
  return int(std::max<int64_t>(splits, 1));
}

size_t wgrad_tile_counters_for(int splits, const ConvShape& conv, int K, Shape4 x) {
  if (splits <= 1) return 0;
  const int64_t rsc = int64_t(conv.kernel_h) * conv.kernel_w * x.c;
  const int64_t tiles = ((K + kWgradTile - 1) / kWgradTile) * ((rsc + kWgradTile - 1) / kWgradTile);
  return size_t(tiles + (K + kWgradBiasChannels - 1) / kWgradBiasChannels);
}

size_t wgrad_workspace_bytes_for(int splits, const ConvShape& conv, int K, Shape4 x) {
  if (splits <= 1) return 0;
  const size_t dw = size_t(K) * conv.kernel_h * conv.kernel_w * x.c;
  return size_t(splits) * (dw + size_t(K)) * sizeof(float);
}

}  // namespace

size_t conv_bwd_data_workspace_bytes(const ConvShape& conv, int K, Shape4 x) {
  return gemm_workspace_bytes(dgrad_dims(conv, K, x, DType::F32));
}

size_t conv_bwd_data_tile_counter_count(const ConvShape& conv, int K, Shape4 x) {
  return gemm_tile_counter_count(dgrad_dims(conv, K, x, DType::F32));
}

size_t conv_bwd_weight_workspace_bytes(const ConvShape& conv, int K, Shape4 x) {
  return wgrad_workspace_bytes_for(wgrad_auto_splits(conv, K, x), conv, K, x);
}

size_t conv_bwd_weight_tile_counter_count(const ConvShape& conv, int K, Shape4 x) {
  return wgrad_tile_counters_for(wgrad_auto_splits(conv, K, x), conv, K, x);
}

void conv_bwd_data(const Context& ctx, const ConvShape& conv, const TensorView& dy,
                   int shuffle_factor, const ConvWeights& w, const TensorView& dx, bool accumulate,
                   const ConvOptions& options) {
  const char* op = "conv_bwd_data";
  validate_weights(w, op);
  FARSEE_REQUIRE(w.executor == ctx.executor, op << ": weights were packed for executor '"
                                                << executor_name(w.executor) << "', running on '"
                                                << executor_name(ctx.executor) << "'");
  FARSEE_REQUIRE(w.use == ConvWeightUse::BackwardData &&
                     w.layout == weight_layout(ctx.executor, w.dtype, ConvWeightUse::BackwardData),
                 op << ": weights must come from alloc_conv_weights(..., "
                       "ConvWeightUse::BackwardData) for this executor");
  validate_backward_geometry(op, conv, &w);
  FARSEE_REQUIRE(dy.data != nullptr && dx.data != nullptr, op << ": dy or dx has no data");
  require_dtype(dy, "conv_bwd_data: dy", w.dtype);
  require_dtype(dx, "conv_bwd_data: dx", w.dtype);
  FARSEE_REQUIRE(dx.c() == w.C,
                 op << ": dx has " << dx.c() << " channels, the weights expect C = " << w.C);
  FARSEE_REQUIRE(dx.pixel_stride >= dx.c() && dy.pixel_stride >= dy.c(),
                 op << ": pixel stride smaller than the channel count");
  require_shape(dy, "conv_bwd_data: dy",
                output_grad_shape(op, conv, dx.shape, w.K, shuffle_factor));
  require_int_sizes(op, ctx, dx.shape, dy.shape);
  if (options.tf32) require_tf32_supported(op, ctx, w.dtype);
  const ConvPlan plan = plan_gemm(dgrad_dims(conv, w.K, dx.shape, w.dtype),
                                  gathers_activations(w.dtype, dy, shuffle_factor), options);
  FARSEE_DISPATCH(ctx, conv_bwd_data, ctx, conv, dy, shuffle_factor, w, dx, accumulate, plan);
}

void conv_bwd_weight(const Context& ctx, const ConvShape& conv, const TensorView& x,
                     const TensorView& dy, int shuffle_factor, float* dw, float* db,
                     void* workspace, size_t workspace_bytes) {
  conv_bwd_weight(ctx, conv, x, dy, shuffle_factor, dw, db, workspace, workspace_bytes, 0);
}

void conv_bwd_weight(const Context& ctx, const ConvShape& conv, const TensorView& x,
                     const TensorView& dy, int shuffle_factor, float* dw, float* db,
                     void* workspace, size_t workspace_bytes, int forced_splits) {
  ConvWgradOptions options;
  options.workspace = workspace;
  options.workspace_bytes = workspace_bytes;
  options.splits = forced_splits;
  conv_bwd_weight(ctx, conv, x, dy, shuffle_factor, dw, db, options);
}

namespace {

// The wgrad split plan for K conv channels (validated against the options' buffers). The host
// executors need no counters (they do not split on the device).
ConvWgradPlan plan_wgrad(const Context& ctx, const ConvShape& conv, int K, Shape4 x,
                         const ConvWgradOptions& o) {
  const char* op = "conv_bwd_weight";
  const bool host = is_host_reference_layout(ctx.executor);
  ConvWgradPlan plan;
  const int64_t M = output_pixels(conv, x);
  if (o.splits >= 1) {
    FARSEE_REQUIRE(o.splits <= M,
                   op << ": " << o.splits << " splits for " << M << " output pixels");
    plan.splits = o.splits;
    const size_t need = wgrad_workspace_bytes_for(plan.splits, conv, K, x);
    FARSEE_REQUIRE(o.workspace_bytes >= need && (need == 0 || o.workspace != nullptr),
                   op << ": " << plan.splits << " splits need " << need
                      << " bytes of workspace, got " << o.workspace_bytes);
    const size_t counters = host ? 0 : wgrad_tile_counters_for(plan.splits, conv, K, x);
    FARSEE_REQUIRE(o.tile_counter_count >= counters && (counters == 0 || o.tile_counters),
                   op << ": " << plan.splits << " splits need " << counters
                      << " zero-filled tile counters, got "
                      << (o.tile_counters ? o.tile_counter_count : 0));
  } else {
    FARSEE_REQUIRE(o.splits == 0, op << ": forced splits " << o.splits);
    plan.splits = wgrad_auto_splits(conv, K, x);
    while (plan.splits > 1 &&
           (o.workspace == nullptr ||
            wgrad_workspace_bytes_for(plan.splits, conv, K, x) > o.workspace_bytes))
      --plan.splits;
    if (!host && (o.tile_counters == nullptr ||
                  wgrad_tile_counters_for(plan.splits, conv, K, x) > o.tile_counter_count))
      plan.splits = 1;
  }
  plan.workspace = plan.splits > 1 ? static_cast<float*>(o.workspace) : nullptr;
  plan.tile_counters = plan.splits > 1 ? o.tile_counters : nullptr;
  return plan;
}

}  // namespace

void conv_bwd_weight(const Context& ctx, const ConvShape& conv, const TensorView& x,
                     const TensorView& dy, int shuffle_factor, float* dw, float* db,
                     const ConvWgradOptions& options) {
  const char* op = "conv_bwd_weight";
  if (options.tf32) require_tf32_supported(op, ctx, x.dtype);
  validate_backward_geometry(op, conv, nullptr);
  FARSEE_REQUIRE(x.data != nullptr && dy.data != nullptr && dw != nullptr,
                 op << ": x, dy or dw has no data");
  require_dtype(dy, "conv_bwd_weight: dy", x.dtype);
  FARSEE_REQUIRE(x.pixel_stride >= x.c() && dy.pixel_stride >= dy.c() && x.c() >= 1,
                 op << ": pixel stride smaller than the channel count");
  const int t = shuffle_factor;
  const int K = dy.c() * t * t;
  require_shape(dy, "conv_bwd_weight: dy", output_grad_shape(op, conv, x.shape, K, t));
  require_int_sizes(op, ctx, x.shape, dy.shape);
  ConvWgradPlan plan = plan_wgrad(ctx, conv, K, x.shape, options);
  plan.tensor_cores = x.dtype == DType::F16 && packs_fit(x, 8) && packs_fit(dy, 8);
  plan.tf32 = options.tf32;
  FARSEE_DISPATCH(ctx, conv_bwd_weight, ctx, conv, x, dy, shuffle_factor, dw, db, plan);
}

}  // namespace farsee
